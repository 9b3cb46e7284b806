"""redis-server processes for the run, each on a free loopback port in
its own folder, killed at exit (bench.procs.Proc): a standalone server
whose data survives a kill (append-only file, so what
follows a restart measures recovery, not an empty store); a master and a
replica watched by three Sentinels; a Cluster of three masters with a
replica each. Every wait is bounded. The layouts follow
tests/it/support/redis.rs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from typing import Callable

from bench.procs import Proc, free_port
from faults import resp


def pick_port() -> int:
    """A free port whose cluster-bus twin (port + 10000) is free too."""
    for _ in range(50):
        port = free_port()
        if port < 55_535:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + 10_000))
                    return port
                except OSError:
                    pass
    raise RuntimeError("no free port pair for redis-server")


def wait_for(what: str, probe: Callable[[], bool], limit: float) -> float:
    """Polls `probe` every 10 ms for at most `limit` s; returns the time it took."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        try:
            if probe():
                return time.monotonic() - t0
        except (OSError, ConnectionError, resp.RedisError):
            pass
        time.sleep(0.01)
    raise RuntimeError(f"{what}: not after {limit}s")


def kill(proc: Proc, sig: int = signal.SIGKILL) -> None:
    """Ends a Proc at once with `sig` (SIGKILL: a crash)."""
    if proc.popen.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        proc.popen.wait(timeout=10)
    proc.logfile.close()
    if proc in Proc.running:
        Proc.running.remove(proc)


class Node:
    """One redis-server (also a Sentinel, or a Cluster node)."""

    def __init__(self, run, name: str, args: tuple = (), conf: str = "", persist: bool = True,
                 port: int = 0):
        self.run, self.name, self.args, self.conf = run, name, list(args), conf
        self.port = port or pick_port()
        self.dir = os.path.join(run.tmp, name)
        os.makedirs(self.dir, exist_ok=True)
        self.persist = persist
        self.proc = None
        self.starts = 0
        self.start()

    def start(self) -> float:
        """Starts it (again, same port and folder); returns the seconds until it answered PING."""
        self.starts += 1
        argv = ["redis-server"] + ([self.conf] if self.conf else []) + [
            "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir, "--save", ""]
        if not self.conf:
            # Every write reaches the file (write(2)) before Redis answers; a
            # killed process loses nothing the kernel holds. No fsync: it
            # would put the disk's latency (shared with builds) into every
            # write, and into the revocations measured.
            argv += ["--appendonly", "yes", "--appendfsync", "no"] if self.persist \
                else ["--appendonly", "no"]
        self.proc = Proc(f"{self.name}-{self.starts}", argv + self.args, None, self.run.logs)
        self.pid = self.proc.pid
        return wait_for(f"{self.name} PING", lambda: self._answers(), 10.0)

    def _answers(self) -> bool:
        if self.proc.popen.poll() is not None:
            raise RuntimeError(f"{self.name} exited:\n{self.proc.tail()}")
        return resp.pings(self.port)

    def kill(self) -> None:
        kill(self.proc)

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()

    def cli(self, *args):
        return resp.call(self.port, *args)


class Standalone:
    def __init__(self, run):
        self.node = Node(run, "redis")
        self.nodes = [self.node]

    def data_nodes(self) -> list[Node]:
        return [self.node]

    def ward_store(self) -> dict:
        return {"url": f"redis://127.0.0.1:{self.node.port}"}

    def writer(self):
        return resp.Standalone(self.node.port)

    def writer_spec(self) -> tuple:
        return ("standalone", self.node.port)

    def stop(self) -> None:
        self.node.stop()


MASTER_NAME = "faultsmaster"


def sentinel_conf(me: int, ports: list[int], master: int, replica: int) -> str:
    ident = lambda i: f"{i + 1:040x}"  # noqa: E731
    lines = [f"sentinel myid {ident(me)}",
             f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master} 2",
             f"sentinel down-after-milliseconds {MASTER_NAME} 1000",
             f"sentinel failover-timeout {MASTER_NAME} 5000",
             f"sentinel known-replica {MASTER_NAME} 127.0.0.1 {replica}"]
    lines += [f"sentinel known-sentinel {MASTER_NAME} 127.0.0.1 {p} {ident(i)}"
              for i, p in enumerate(ports) if i != me]
    return "\n".join(lines) + "\n"


class SentinelSet:
    """A master, one replica and three Sentinels (quorum 2)."""

    def __init__(self, run):
        a = Node(run, "sentinel-data-a", ("--repl-diskless-sync-delay", "0"))
        b = Node(run, "sentinel-data-b", ("--replicaof", "127.0.0.1", str(a.port),
                                          "--repl-diskless-sync-delay", "0"))
        self.data = [a, b]
        wait_for("the replica to sync",
                 lambda: "master_link_status:up" in b.cli("INFO", "replication"), 15)
        ports = [pick_port() for _ in range(3)]
        self.sentinels = []
        for i, p in enumerate(ports):
            d = os.path.join(run.tmp, f"sentinel-{i}")
            os.makedirs(d, exist_ok=True)
            conf = os.path.join(d, "sentinel.conf")
            with open(conf, "w") as f:
                f.write(sentinel_conf(i, ports, a.port, b.port))
            self.sentinels.append(Node(run, f"sentinel-{i}", ("--sentinel",), conf=conf,
                                       persist=False, port=p))
        for s in self.sentinels:
            wait_for("the Sentinels to see each other", lambda: self._others(s) == 2, 15)
        self.nodes = self.data + self.sentinels

    @staticmethod
    def _others(s: Node) -> int:
        info = s.cli("SENTINEL", "master", MASTER_NAME)
        d = dict(zip(info[::2], info[1::2]))
        return int(d.get("num-other-sentinels", 0))

    def master_port(self) -> int:
        return resp.Sentinel([s.port for s in self.sentinels], MASTER_NAME).master_port()

    def data_nodes(self) -> list[Node]:
        return self.data

    def master(self) -> Node:
        port = self.master_port()
        return next(n for n in self.data if n.port == port)

    def ward_store(self) -> dict:
        return {"mode": "sentinel", "master_name": MASTER_NAME,
                "nodes": [f"redis://127.0.0.1:{s.port}" for s in self.sentinels]}

    def writer(self):
        return resp.Sentinel([s.port for s in self.sentinels], MASTER_NAME)

    def writer_spec(self) -> tuple:
        return ("sentinel", [s.port for s in self.sentinels], MASTER_NAME)

    def replica_synced(self) -> bool:
        m = self.master_port()
        other = next(n for n in self.data if n.port != m)
        return "master_link_status:up" in other.cli("INFO", "replication")

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()


class ClusterSet:
    """Three masters with a replica each (node timeout 2 s)."""

    def __init__(self, run):
        args = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "2000")
        self.nodes = [Node(run, f"cluster-{i}", args) for i in range(6)]
        r = subprocess.run(["redis-cli", "--cluster", "create"]
                           + [f"127.0.0.1:{n.port}" for n in self.nodes]
                           + ["--cluster-replicas", "1", "--cluster-yes"],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"cluster create failed:\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
        for n in self.nodes:
            wait_for("cluster_state:ok", lambda: "cluster_state:ok" in n.cli("CLUSTER", "INFO"), 20)
        wait_for("the replicas to sync", self.replicas_synced, 20)

    def data_nodes(self) -> list[Node]:
        return self.live()

    def replicas_synced(self) -> bool:
        for n in self.live():
            info = n.cli("INFO", "replication")
            if "role:slave" in info and "master_link_status:up" not in info:
                return False
        return True

    def live(self) -> list[Node]:
        return [n for n in self.nodes if n.proc and n.proc.popen.poll() is None]

    def master_of(self, key: str) -> Node:
        c = resp.Cluster([n.port for n in self.live()])
        port = c.node_of(key)
        return next(n for n in self.nodes if n.port == port)

    def ward_store(self) -> dict:
        return {"mode": "cluster", "nodes": [f"redis://127.0.0.1:{n.port}" for n in self.nodes]}

    def writer(self):
        return resp.Cluster([n.port for n in self.nodes])

    def writer_spec(self) -> tuple:
        return ("cluster", [n.port for n in self.nodes])

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()

