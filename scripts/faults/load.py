"""The open-loop load, in its own process (so the faults and the direct
gRPC polls in the main process do not share its interpreter lock): an
asyncio HTTP/1.1 client that sends requests through Envoy at a fixed
rate whatever the answers (a request is due at its slot; latency counts
from the slot, so a stall is measured, not hidden), on as many keep-alive
connections as it needs. The mix (settings.MIX) cycles through cached
and fresh sessions, API keys and new tokens, interleaved with credentials
that must be denied. A thread writes fresh sessions to Redis ahead of
use. Every answer is a record: (slot time, answer time, kind, must allow,
stale route, status, identity right); the main process asks for the
records of a window over a pipe, and can pause the load, add a flood of
bogus credentials, hand over RS256 tokens, or start the soak's churn."""

from __future__ import annotations

import asyncio
import collections
import re
import threading
import time
from typing import Optional

from bench.credentials import new_api_key
from faults import creds as C
from faults import resp, tokens
from faults.settings import DENY_KINDS, MIX, REQUEST_TIMEOUT, STALE_EVERY, USER_IPS

MAX_CONNS = 512
REASON_RE = re.compile(rb'"reason":"([a-z_]+)"')
AHEAD = 2000  # fresh sessions written ahead of use (> 10 s of them)

# Record fields. REASON: a deny's `reason` from ward's JSON body, "envoy" for
# an answer without one (Envoy's own 503 when the check failed), else "".
SCHED, DONE, KIND, MUST_ALLOW, STALE, STATUS, IDENT_OK, REASON = range(8)


def make_writer(spec: tuple):
    kind = spec[0]
    if kind == "standalone":
        return resp.Standalone(spec[1])
    if kind == "sentinel":
        return resp.Sentinel(spec[1], spec[2])
    return resp.Cluster(spec[1])


def user_ip(i: int) -> str:
    return f"198.18.0.{i % USER_IPS + 1}"


def deny_ip(i: int) -> str:
    return f"198.18.{1 + (i // 250) % 20}.{i % 250 + 1}"


def bogus_ip(i: int) -> str:
    return f"198.19.{(i // 250) % 256}.{i % 250 + 1}"


class Feeder(threading.Thread):
    """Keeps AHEAD fresh sessions written; runs the churn's revocations."""

    def __init__(self, writer_spec: tuple):
        super().__init__(daemon=True)
        self.writer = make_writer(writer_spec)
        self.ready: collections.deque[str] = collections.deque()
        self.revoke_q: collections.deque[str] = collections.deque()
        self.revoked: collections.deque[tuple[float, str]] = collections.deque(maxlen=300)
        self.written = self.failures = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                if self.revoke_q:
                    batch = [self.revoke_q.popleft() for _ in range(min(50, len(self.revoke_q)))]
                    self.writer.write([c for sid in batch for c in C.revoke_session_cmds(sid)])
                    done = time.monotonic()
                    self.revoked.extend((done, sid) for sid in batch)
                if len(self.ready) < AHEAD:
                    ids = C.new_session_ids(250)
                    self.writer.write([c for sid in ids for c in C.session_cmds(sid)])
                    self.ready.extend(ids)
                    self.written += len(ids)
                    continue
            except (OSError, ConnectionError, resp.RedisError):
                self.failures += 1
                time.sleep(0.2)
                continue
            time.sleep(0.05)


class Load:
    def __init__(self, conn, cfg: dict):
        self.conn, self.cfg = conn, cfg
        self.port = cfg["envoy_port"]
        self.rate = cfg["rate"]
        self.creds: C.Creds = cfg["creds"]
        self.records: list[tuple] = []
        self.idle: list[tuple] = []
        self.open = 0
        self.slots = asyncio.Semaphore(MAX_CONNS)
        self.paused = False
        self.jwks_tokens: collections.deque[str] = collections.deque()
        self.recent: collections.deque[str] = collections.deque(maxlen=500)
        self.churn: Optional[dict] = None
        self.running = True
        self.feeder = Feeder(cfg["writer"])
        self.counts = collections.Counter()
        self.new_tokens = 0

    # ---------------------------------------------------------- requests

    def build(self, i: int, kind: str, deny_i: int) -> tuple[str, dict, str, bool, str]:
        """(kind, headers, expected user or '', must allow, ip) for slot i."""
        c = self.creds
        if kind == "new_session":
            if self.feeder.ready:
                sid = self.feeder.ready.popleft()
                self.recent.append(sid)
                return "new_session", {"cookie": f"session_id={sid}"}, C.SESSION_USER, True, \
                    user_ip(i)
            kind = "hot_session"
            self.counts["no_fresh_session"] += 1
        if kind == "hot_session":
            sid = c.hot_sessions[i % len(c.hot_sessions)]
            return kind, {"cookie": f"session_id={sid}"}, C.SESSION_USER, True, user_ip(i)
        if kind == "apikey":
            return kind, {"x-api-key": c.apikeys[i % len(c.apikeys)]}, C.APIKEY_USER, True, \
                user_ip(i)
        if kind == "new_token":
            self.new_tokens += 1
            if self.jwks_tokens and self.new_tokens % 8 == 0:  # 10/s while the pool lasts
                tok = self.jwks_tokens.popleft()
                kind = "jwks_token"
            else:
                tok = tokens.hs256(tokens.claims(C.TOKEN_USER, 3600, tokens.new_jti()))
            return kind, {"authorization": f"Bearer {tok}"}, C.TOKEN_USER, True, user_ip(i)
        # must be denied
        ip = deny_ip(deny_i)
        if self.churn is not None and deny_i % 2 == 0:
            now = time.monotonic()
            grace = self.churn["grace"]
            usable = [sid for t, sid in self.feeder.revoked if now - t >= grace]
            if usable:
                sid = usable[deny_i % len(usable)]
                return "churn_revoked", {"cookie": f"session_id={sid}"}, "", False, ip
        d = DENY_KINDS[deny_i % len(DENY_KINDS)]
        if d == "revoked_session":
            h = {"cookie": f"session_id={c.revoked_sessions[deny_i % len(c.revoked_sessions)]}"}
        elif d == "unknown_session":
            h = {"cookie": f"session_id={C.new_session_ids(1)[0]}"}
        elif d == "expired_session":
            h = {"cookie": f"session_id={c.expired_sessions[deny_i % len(c.expired_sessions)]}"}
        elif d == "revoked_apikey":
            h = {"x-api-key": c.revoked_apikeys[deny_i % len(c.revoked_apikeys)]}
        elif d == "unknown_apikey":
            h = {"x-api-key": new_api_key()}
        elif d == "expired_token":
            h = {"authorization": "Bearer " + tokens.hs256(
                tokens.claims(C.TOKEN_USER, -3600, tokens.new_jti()))}
        else:  # revoked_token
            h = {"authorization": "Bearer " + c.revoked_tokens[deny_i % len(c.revoked_tokens)]}
        return d, h, "", False, ip

    async def connection(self):
        if self.idle:
            return self.idle.pop()
        r, w = await asyncio.open_connection("127.0.0.1", self.port)
        self.open += 1
        return r, w

    async def send(self, t_sched: float, kind: str, headers: dict, user: str, must_allow: bool,
                   ip: str, stale: bool) -> None:
        path = "/stale/items" if stale else "/api/items"
        lines = [f"GET {path} HTTP/1.1", "host: faults.test", f"x-forwarded-for: {ip}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        data = ("\r\n".join(lines) + "\r\n\r\n").encode()
        status, body = 0, b""
        async with self.slots:
            conn = None
            try:
                conn = await asyncio.wait_for(self.connection(), REQUEST_TIMEOUT)
                r, w = conn
                w.write(data)
                status, body, keep = await asyncio.wait_for(read_response(r), REQUEST_TIMEOUT)
                if keep:
                    self.idle.append(conn)
                else:
                    w.close()
                    self.open -= 1
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError,
                    IndexError):
                status = 0
                if conn:
                    conn[1].close()
                    self.open -= 1
        ident_ok = status != 200 or body.strip().decode(errors="replace") == user
        reason = ""
        if status not in (200, 401):
            m = REASON_RE.search(body)
            reason = m.group(1).decode() if m else "envoy"
        self.records.append((t_sched, time.monotonic(), kind, must_allow, stale, status, ident_ok,
                             reason))

    async def ticker(self) -> None:
        i = deny_i = 0
        t0 = time.monotonic()
        while self.running:
            t = t0 + i / self.rate
            now = time.monotonic()
            if t > now:
                await asyncio.sleep(t - now)
            slot = MIX[i % len(MIX)]
            if not self.paused:
                if slot == "deny":
                    deny_i += 1
                kind, h, user, allow, ip = self.build(i, slot, deny_i)
                asyncio.ensure_future(self.send(t, kind, h, user, allow, ip,
                                                i % STALE_EVERY == STALE_EVERY - 1))
            i += 1

    async def bogus(self, n: int, rate: float) -> None:
        """n unknown session ids, each from its own address, at `rate`/s."""
        t0 = time.monotonic()
        for k in range(n):
            t = t0 + k / rate
            now = time.monotonic()
            if t > now:
                await asyncio.sleep(t - now)
            sid = C.new_session_ids(1)[0]
            asyncio.ensure_future(self.send(t, "bogus", {"cookie": f"session_id={sid}"}, "",
                                            False, bogus_ip(k), False))

    async def churner(self) -> None:
        """The soak's revocations: every second, `per_s` recently used
        fresh sessions are revoked (HSET + PUBLISH); from `grace` s after,
        they are sent as credentials that must be denied."""
        while self.running and self.churn is not None:
            for _ in range(self.churn["per_s"]):
                if self.recent:
                    self.feeder.revoke_q.append(self.recent.popleft())
            await asyncio.sleep(1.0)

    # ---------------------------------------------------------- control

    def on_command(self) -> None:
        msg = self.conn.recv()
        op = msg[0]
        if op == "records":
            lo, hi = msg[1], msg[2]
            self.conn.send([r for r in self.records if lo <= r[SCHED] < hi])
        elif op == "drop":
            self.records = [r for r in self.records if r[SCHED] >= msg[1]]
            self.conn.send(True)
        elif op == "pause":
            self.paused = msg[1]
            self.conn.send(True)
        elif op == "jwks_tokens":
            self.jwks_tokens.extend(msg[1])
            self.conn.send(True)
        elif op == "bogus":
            asyncio.ensure_future(self.bogus(msg[1], msg[2]))
            self.conn.send(True)
        elif op == "churn":
            self.churn = msg[1]
            asyncio.ensure_future(self.churner())
            self.conn.send(True)
        elif op == "stats":
            self.conn.send({"open_conns": self.open, "sessions_written": self.feeder.written,
                            "feeder_failures": self.feeder.failures,
                            "fresh_ready": len(self.feeder.ready), **self.counts})
        elif op == "stop":
            self.running = False
            self.conn.send(True)

    async def main(self) -> None:
        self.feeder.start()
        deadline = time.monotonic() + 15
        while len(self.feeder.ready) < 500 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        loop = asyncio.get_running_loop()
        loop.add_reader(self.conn.fileno(), self.on_command)
        self.conn.send("ready")
        await self.ticker()
        self.feeder.stop.set()
        await asyncio.sleep(REQUEST_TIMEOUT)


async def read_response(r) -> tuple[int, bytes, bool]:
    head = await r.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    h = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            h[k.strip().lower()] = v.strip().lower()
    if "content-length" in h:
        body = await r.readexactly(int(h["content-length"]))
    elif h.get("transfer-encoding") == "chunked":
        parts = []
        while True:
            size = int((await r.readline()).strip().split(b";")[0], 16)
            if size == 0:
                await r.readline()
                break
            parts.append(await r.readexactly(size))
            await r.readline()
        body = b"".join(parts)
    else:
        body = b""
    return status, body, h.get("connection") != "close"


def child(conn, cfg: dict) -> None:
    """The load process's entry point."""
    asyncio.run(Load(conn, cfg).main())


class LoadProcess:
    """The main process's handle on the load process."""

    def __init__(self, envoy_port: int, creds: C.Creds, writer_spec: tuple, rate: float):
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # no fork of a process holding gRPC threads
        self.conn, theirs = ctx.Pipe()
        cfg = {"envoy_port": envoy_port, "creds": creds, "writer": writer_spec, "rate": rate}
        self.proc = ctx.Process(target=child, args=(theirs, cfg), daemon=True)
        self.proc.start()
        if not self.conn.poll(30):
            raise RuntimeError("load process not ready after 30 s")
        assert self.conn.recv() == "ready"
        self.started = time.monotonic()
        self.lock = threading.Lock()

    def ask(self, *msg):
        with self.lock:
            self.conn.send(msg)
            if not self.conn.poll(30):
                raise RuntimeError(f"load process did not answer {msg[0]}")
            return self.conn.recv()

    def records(self, lo: float, hi: float) -> list[tuple]:
        return self.ask("records", lo, hi)

    def stop(self) -> None:
        try:
            self.ask("stop")
        except (OSError, EOFError, RuntimeError):
            pass
        self.proc.join(timeout=REQUEST_TIMEOUT + 3)
        if self.proc.is_alive():
            self.proc.kill()
