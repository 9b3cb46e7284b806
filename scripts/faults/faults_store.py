"""The store's faults, each injected under load and measured into a row:
Redis stopped (SIGSTOP) for 3 s; Redis killed and restarted after 3 s (its
append-only file keeps the data); Redis restarted while both wards are
idle (is the first check afterwards answered from Redis?); the pub/sub
connections killed with a revocation published in the gap; a Sentinel
failover (asked for, and by killing the master); a Cluster master killed
until its replica is promoted. While Redis is broken a prober per ward
sends a Check with a fresh session every 5 ms, straight to the ward: the
first allow after Redis returns is its time to recover."""

from __future__ import annotations

import signal
import time

from faults import creds as C
from faults import resp
from faults.direct import Prober, first_allow_after, session_headers
from faults.redis_nodes import MASTER_NAME, wait_for
from faults.rows import begin, check, end, fill_load
from faults.settings import OUTAGE_S, PUBSUB_GAP_MS, SETTLE_S

PROBE_EVERY = 0.005


def probers(ctx, seconds: float) -> list[Prober]:
    n = int(seconds / PROBE_EVERY) + 50
    return [Prober(w, C.write_sessions(ctx.writer, n), PROBE_EVERY) for w in ctx.direct]


def ward_recovery(row: dict, probes: list[Prober], t_back: float) -> list:
    """ms to each ward's first allow after t_back (direct probes)."""
    out = []
    for p in probes:
        r = first_allow_after(p.stop(), t_back)
        out.append(None if r is None else r * 1000)
    row["recovery_wards_ms"] = out
    return out


def redis_sigstop(ctx) -> dict:
    row = begin(ctx, "Redis SIGSTOP 3 s", "redis-server stopped (SIGSTOP) for 3 s, then SIGCONT")
    node = ctx.redis.node
    probes = probers(ctx, 1 + OUTAGE_S + SETTLE_S)
    time.sleep(0.5)
    t_start = time.monotonic()
    node.signal(signal.SIGSTOP)
    time.sleep(OUTAGE_S)
    node.signal(signal.SIGCONT)
    t_back = time.monotonic()
    time.sleep(SETTLE_S)
    rec = ward_recovery(row, probes, t_back)
    fill_load(row, ctx.load, t_start, t_back, SETTLE_S, t_back)
    check(row, "recovery_ms", None if None in rec else max(rec))
    return end(ctx, row)


def redis_restart(ctx) -> dict:
    row = begin(ctx, "Redis killed, restarted after 3 s",
                "redis-server SIGKILLed, started again 3 s later on its append-only file")
    node = ctx.redis.node
    probes = probers(ctx, 1 + OUTAGE_S + 1 + SETTLE_S)
    time.sleep(0.5)
    t_start = time.monotonic()
    node.kill()
    time.sleep(OUTAGE_S)
    node.start()  # returns once PING is answered
    t_back = time.monotonic()
    time.sleep(SETTLE_S)
    rec = ward_recovery(row, probes, t_back)
    fill_load(row, ctx.load, t_start, t_back, SETTLE_S, t_back)
    check(row, "recovery_ms", None if None in rec else max(rec))
    return end(ctx, row)


def redis_restart_idle(ctx) -> dict:
    """The load paused: both wards idle while Redis restarts; 2 s later one
    check per ward, straight to it, with a session it has never seen."""
    row = begin(ctx, "Redis restarted, wards idle",
                "load paused; redis-server SIGKILLed and started again; 2 s later one check "
                "per ward with an uncached session")
    ctx.load.ask("pause", True)
    time.sleep(2.5)  # in-flight requests done; the wards are idle
    node = ctx.redis.node
    node.kill()
    node.start()
    time.sleep(2.0)
    sids = C.write_sessions(ctx.writer, len(ctx.direct))
    answers, lat = [], []
    for w, sid in zip(ctx.direct, sids):
        t = time.monotonic()
        answers.append(w.check(session_headers(sid)))
        lat.append((time.monotonic() - t) * 1000)
    ctx.load.ask("pause", False)
    row["during"] = "paused"
    row["after"] = "first checks " + " ".join(str(a) for a in answers)
    row["notes"].append("first check per ward: " + ", ".join(
        f"{a} in {m:.1f} ms" for a, m in zip(answers, lat)))
    check(row, "first_check", 1 if all(a == 200 for a in answers) else 0)
    time.sleep(1.0)
    return end(ctx, row)


def pubsub_kill(ctx) -> dict:
    """CLIENT KILL TYPE pubsub on every data node, then at once a
    revocation of a session both wards hold: its message is lost; each
    ward must honour it when it resubscribes (and clears its cache)."""
    row = begin(ctx, "pub/sub connection killed",
                "CLIENT KILL TYPE pubsub, a revocation published in the gap; both wards polled")
    sid = C.write_sessions(ctx.writer, 1)[0]
    warm = [w.check(session_headers(sid)) for w in ctx.direct]
    if warm != [200] * len(ctx.direct):
        row["notes"].append(f"warm-up checks answered {warm}")
    t_start = time.monotonic()
    for node in ctx.redis.data_nodes():
        try:
            node.cli("CLIENT", "KILL", "TYPE", "pubsub")
        except (OSError, ConnectionError, resp.RedisError):
            pass
    t0 = time.monotonic()
    resp.write_retrying(ctx.writer, C.revoke_session_cmds(sid), limit=2.0)
    gap = [None] * len(ctx.direct)
    while None in gap and time.monotonic() - t0 < 5.0:
        for i, w in enumerate(ctx.direct):
            if gap[i] is None and w.check(session_headers(sid)) == 401:  # session_revoked
                gap[i] = (time.monotonic() - t0) * 1000
    row["gap_ms"] = gap
    late = sum(1 for g in gap if g is None or g > PUBSUB_GAP_MS)
    row["wrong_allows"] += late
    row["notes"].append("revocation in the gap honoured after " + ", ".join(
        "never" if g is None else f"{g:.0f} ms" for g in gap)
        + f" (documented: at most {PUBSUB_GAP_MS:.0f} ms)")
    t_end = time.monotonic()
    fill_load(row, ctx.load, t_start, t_end, SETTLE_S)
    return end(ctx, row)


def sentinel_failover(ctx, kill_master: bool) -> dict:
    s = ctx.redis
    name = "Sentinel: master killed" if kill_master else "Sentinel: manual failover"
    what = ("master SIGKILLed; Sentinels promote the replica; old master restarted as replica"
            if kill_master else "SENTINEL FAILOVER: master and replica swap")
    row = begin(ctx, name, what)
    old = s.master_port()
    time.sleep(0.5)
    t_start = time.monotonic()
    if kill_master:
        s.master().kill()
    else:
        s.sentinels[0].cli("SENTINEL", "FAILOVER", MASTER_NAME)

    def promoted() -> bool:
        port = s.master_port()
        return port != old and "role:master" in resp.call(port, "INFO", "replication")

    took = wait_for("the Sentinels to promote the replica", promoted, 30)
    t_back = time.monotonic()
    row["notes"].append(f"new master named after {took * 1000:.0f} ms")
    time.sleep(SETTLE_S)
    fill_load(row, ctx.load, t_start, t_back, SETTLE_S, t_back)
    if kill_master:
        dead = next(n for n in s.data if n.port == old)
        dead.start()
    wait_for("the replica to sync again", s.replica_synced, 30)
    return end(ctx, row)


def cluster_master_killed(ctx) -> dict:
    c = ctx.redis
    row = begin(ctx, "Cluster: master killed",
                "a master SIGKILLed until its replica is promoted; then restarted as a replica")
    victim = c.master_of(f"session:{ctx.creds.hot_sessions[0]}")
    others = [n for n in c.nodes if n is not victim]
    time.sleep(0.5)
    t_start = time.monotonic()
    victim.kill()

    def promoted() -> bool:
        """The victim flagged failed (not just suspected) and every slot served."""
        via = others[0]
        if "cluster_state:ok" not in via.cli("CLUSTER", "INFO"):
            return False
        for line in via.cli("CLUSTER", "NODES").splitlines():
            f = line.split()
            if f[1].split("@")[0].endswith(f":{victim.port}"):
                return "fail" in f[2].split(",")
        return False

    took = wait_for("the replica to be promoted", promoted, 30)
    t_back = time.monotonic()
    row["notes"].append(f"replica promoted, cluster_state:ok after {took * 1000:.0f} ms")
    time.sleep(SETTLE_S)
    fill_load(row, ctx.load, t_start, t_back, SETTLE_S, t_back)
    victim.start()
    wait_for("the old master to rejoin as a synced replica", c.replicas_synced, 30)
    return end(ctx, row)
