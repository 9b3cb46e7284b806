"""A small synchronous Redis client, enough for what the run writes:
sessions, API keys and revocations in one pipeline, PUBLISH, and the
admin commands that inject faults (CLIENT KILL, SENTINEL, CLUSTER). One
class per deployment (standalone, Sentinel, Cluster), each finding the
node that takes a write by itself after a failover. redis-cli would
cost a process per command and cannot pipeline across Cluster slots."""

from __future__ import annotations

import socket
import time
from typing import Optional, Sequence

from bench.credentials import resp as encode


class RedisError(Exception):
    """An error reply (`-ERR ...`)."""


class Conn:
    """One connection to one node; replies decoded (bulk strings as str)."""

    def __init__(self, port: int, timeout: float = 1.0):
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")

    def close(self) -> None:
        try:
            self.file.close()
            self.sock.close()
        except OSError:
            pass

    def _read(self):
        line = self.file.readline()
        if not line:
            raise ConnectionError(f"redis {self.port}: connection closed")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.file.read(n + 2)
            return data[:-2].decode(errors="replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise ConnectionError(f"redis {self.port}: unexpected reply {line[:40]!r}")

    def pipeline(self, cmds: Sequence[Sequence[str]]) -> list:
        """Every command's reply, in order; error replies as RedisError values."""
        self.sock.sendall(b"".join(encode(*map(str, c)) for c in cmds))
        return [self._read() for _ in cmds]

    def call(self, *args):
        (reply,) = self.pipeline([args])
        if isinstance(reply, RedisError):
            raise reply
        return reply


def call(port: int, *args, timeout: float = 1.0):
    """One command on a fresh connection (admin commands, probes)."""
    c = Conn(port, timeout)
    try:
        return c.call(*args)
    finally:
        c.close()


def pings(port: int) -> bool:
    try:
        return call(port, "PING", timeout=0.3) == "PONG"
    except (OSError, ConnectionError, RedisError):
        return False


class Standalone:
    """Writes to one server, reconnecting after a failure."""

    def __init__(self, port: int):
        self.port = port
        self.conn: Optional[Conn] = None

    def target(self) -> int:
        return self.port

    def pipeline(self, cmds: Sequence[Sequence[str]]) -> list:
        try:
            if self.conn is None:
                self.conn = Conn(self.target())
            return self.conn.pipeline(cmds)
        except (OSError, ConnectionError):
            if self.conn:
                self.conn.close()
            self.conn = None
            raise

    def write(self, cmds: Sequence[Sequence[str]]) -> None:
        """Sends the commands (a whole pipeline); raises on any error reply."""
        replies = self.pipeline(cmds)
        errors = [r for r in replies if isinstance(r, RedisError)]
        if errors:
            if any(str(e).startswith("READONLY") for e in errors) and self.conn:
                self.conn.close()
                self.conn = None
            raise errors[0]


class Sentinel(Standalone):
    """Writes to the master the Sentinels name, asked again after a failure."""

    def __init__(self, sentinel_ports: list[int], name: str):
        super().__init__(0)
        self.sentinels, self.name = sentinel_ports, name

    def master_port(self) -> int:
        for p in self.sentinels:
            try:
                addr = call(p, "SENTINEL", "get-master-addr-by-name", self.name, timeout=0.5)
                if addr:
                    return int(addr[1])
            except (OSError, ConnectionError, RedisError):
                continue
        raise ConnectionError("no Sentinel answers")

    def target(self) -> int:
        return self.master_port()


SLOTS = 16384


def crc16(data: bytes) -> int:
    """CRC16-XMODEM, as Redis Cluster computes key slots."""
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def key_slot(key: str) -> int:
    k = key.encode()
    start = k.find(b"{")
    if start >= 0:
        end = k.find(b"}", start + 1)
        if end > start + 1:
            k = k[start + 1:end]
    return crc16(k) % SLOTS


class Cluster:
    """Writes each command to the master owning its key (commands[1]);
    PUBLISH goes to any node. The slot map is read again after a
    failure or a MOVED reply."""

    def __init__(self, ports: list[int]):
        self.ports = list(ports)
        self.owner: dict[int, int] = {}  # slot range start -> port, via self.ranges
        self.ranges: list[tuple[int, int, int]] = []
        self.conns: dict[int, Conn] = {}

    def refresh(self) -> None:
        for p in self.ports:
            try:
                slots = call(p, "CLUSTER", "SLOTS", timeout=0.5)
            except (OSError, ConnectionError, RedisError):
                continue
            self.ranges = [(int(r[0]), int(r[1]), int(r[2][1])) for r in slots]
            if self.ranges:
                return
        raise ConnectionError("no cluster node answers CLUSTER SLOTS")

    def node_of(self, key: str) -> int:
        if not self.ranges:
            self.refresh()
        s = key_slot(key)
        for lo, hi, port in self.ranges:
            if lo <= s <= hi:
                return port
        raise ConnectionError(f"slot {s} has no owner")

    def _conn(self, port: int) -> Conn:
        if port not in self.conns:
            self.conns[port] = Conn(port)
        return self.conns[port]

    def write(self, cmds: Sequence[Sequence[str]]) -> None:
        groups: dict[int, list] = {}
        for c in cmds:
            # PUBLISH reaches every node from any: send it with the first key's.
            port = self.node_of(str(c[1]) if str(c[0]).upper() != "PUBLISH" else "publish")
            groups.setdefault(port, []).append(c)
        for port, group in groups.items():
            try:
                replies = self._conn(port).pipeline(group)
            except (OSError, ConnectionError):
                conn = self.conns.pop(port, None)
                if conn:
                    conn.close()
                self.ranges = []
                raise
            errors = [r for r in replies if isinstance(r, RedisError)]
            if errors:
                self.ranges = []
                raise errors[0]


def write_retrying(store, cmds: Sequence[Sequence[str]], limit: float = 10.0) -> float:
    """store.write(cmds), retried for up to `limit` seconds (a failover in
    progress); returns when it was done (time.monotonic())."""
    deadline = time.monotonic() + limit
    while True:
        try:
            store.write(cmds)
            return time.monotonic()
        except (OSError, ConnectionError, RedisError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
