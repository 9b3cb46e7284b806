"""The faults around the store: the JWKS endpoint answering 500, garbage
or 3 s late; a flood of bogus credentials from 10,000 client addresses;
thousands of TCP connections to a ward's gRPC port that never send the
HTTP/2 preface (measured, not fixed here: is each closed, and what does
it cost?); a rolling stop of one ward (SIGTERM, `drain_delay`) under
load; and 20 config reloads of both wards under load (SIGHUP)."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import time

from bench.procs import log
from faults import creds as C
from faults.direct import Direct
from faults.load import KIND, MUST_ALLOW, STATUS
from faults.rows import begin, check, end, fill_load, new_row, statuses
from faults.settings import BOGUS_ADDRESSES, SETTLE_S, SILENT_CONNS, SILENT_HOLD_S
from faults.tokens import Rsa, claims

JWKS_FAULT_S = 5.0


def jwks(ctx, mode: str) -> dict:
    """The endpoint broken for 5 s (wards refetch every 1 s, time out at
    1 s): tokens of the key it served before must keep being allowed."""
    label = {"500": "500", "garbage": "garbage", "slow": "3 s slow"}[mode]
    row = begin(ctx, f"JWKS endpoint {label}", f"the JWKS URL answers {label} for 5 s "
                "(refresh_interval 1 s, timeout 1 s)")
    rsa = Rsa()
    ctx.load.ask("jwks_tokens", [rsa.token(claims(C.TOKEN_USER, 3600))
                                 for _ in range(int(JWKS_FAULT_S * 12) + 20)])
    fetches0 = ctx.jwks.fetches
    t_start = time.monotonic()
    ctx.jwks.mode = mode
    time.sleep(JWKS_FAULT_S)
    ctx.jwks.mode = "ok"
    t_end = time.monotonic()
    recs = fill_load(row, ctx.load, t_start, t_end, SETTLE_S)
    during = [r for r in recs if r[KIND] == "jwks_token" and r[0] < t_end]
    kept = sum(1 for r in during if r[STATUS] == 200)
    row["notes"].append(f"RS256 tokens of the JWKS key during the fault: {kept}/{len(during)} "
                        f"allowed; {ctx.jwks.fetches - fetches0} fetches")
    check(row, "jwks_kept", 1 if during and kept == len(during) else 0)
    return end(ctx, row)


def bogus_addresses(ctx, rate: float = 800.0) -> dict:
    """10,000 unknown session ids, each from its own x-forwarded-for address
    (ward trusts 2 hops): no per-address budget is ever spent."""
    row = begin(ctx, "bogus credentials, 10,000 addresses",
                f"{BOGUS_ADDRESSES:,} unknown session ids at {rate:.0f}/s, each from its own "
                "client address, on top of the load")
    reads0 = sum(ctx.stack.metric(i, "ward_store_requests_total") for i in range(2))
    t_start = time.monotonic()
    ctx.load.ask("bogus", BOGUS_ADDRESSES, rate)
    time.sleep(BOGUS_ADDRESSES / rate)
    t_end = time.monotonic()
    recs = fill_load(row, ctx.load, t_start, t_end, SETTLE_S)
    reads = sum(ctx.stack.metric(i, "ward_store_requests_total") for i in range(2)) - reads0
    bogus = [r for r in recs if r[KIND] == "bogus"]
    legit = [r for r in recs if r[KIND] != "bogus" and r[MUST_ALLOW]]
    row["notes"].append(f"bogus answered {statuses(bogus)}; valid credentials meanwhile "
                        f"{statuses(legit)}; {reads:.0f} store reads (both wards)")
    return end(ctx, row)


def raise_nofile(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))


def silent_connections(ctx) -> dict:
    """SILENT_CONNS connections to ward 1's gRPC port that never send a
    byte, watched for SILENT_HOLD_S s: how many ward closes, and its RSS."""
    row = begin(ctx, f"{SILENT_CONNS:,} silent connections",
                f"{SILENT_CONNS:,} TCP connections to one ward's gRPC port that never send the "
                f"HTTP/2 preface, watched {SILENT_HOLD_S:.0f} s")
    port = ctx.stack.ports[0][0]
    socks = []
    t_start = time.monotonic()
    for _ in range(SILENT_CONNS):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.setblocking(False)
            socks.append(s)
        except OSError:
            break
    opened = len(socks)
    rss_held = ctx.stack.rss_mb()
    closed_at: dict[int, float] = {}
    deadline = t_start + SILENT_HOLD_S
    while time.monotonic() < deadline and len(closed_at) < opened:
        for i, s in enumerate(socks):
            if i in closed_at:
                continue
            try:
                if s.recv(4096) == b"":
                    closed_at[i] = time.monotonic() - t_start
            except BlockingIOError:
                pass
            except OSError:
                closed_at[i] = time.monotonic() - t_start
        time.sleep(0.25)
    t_end = time.monotonic()
    rss_end_held = ctx.stack.rss_mb()
    for s in socks:
        s.close()
    fill_load(row, ctx.load, t_start, t_end, SETTLE_S)
    time.sleep(1.0)
    closed = len(closed_at)
    row["notes"].append(
        f"{opened} opened; {closed} closed by ward within {SILENT_HOLD_S:.0f} s"
        + (f" (first after {min(closed_at.values()):.1f} s, last {max(closed_at.values()):.1f} s)"
           if closed else "")
        + f"; ward 1 RSS {row['rss_before'][0]:.1f} MB before, {rss_held[0]:.1f} MB with them "
          f"open, {rss_end_held[0]:.1f} MB at the end of the hold")
    check(row, "silent_closed", 1 if opened and closed == opened else 0)
    return end(ctx, row)


def rolling_stop(ctx) -> dict:
    """SIGTERM to ward 1 under load (drain_delay 2 s: not ready, still
    answering, then listeners closed), restarted on the same ports once
    it has exited; nothing through Envoy may fail meanwhile."""
    row = begin(ctx, "SIGTERM, drain_delay, rolling stop",
                "ward 1 SIGTERMed under load (drain_delay 2 s), restarted once it exited")
    t_start = time.monotonic()
    ctx.stack.stop_ward(0, signal.SIGTERM)  # waits for the exit
    exited = time.monotonic() - t_start
    ctx.stack.start_ward(0)
    ctx.stack.wait_healthy([0, 1])
    t_end = time.monotonic()
    ctx.direct[0].close()
    ctx.direct[0] = Direct(ctx.stack.ports[0][0])
    recs = fill_load(row, ctx.load, t_start, t_end, SETTLE_S)
    failed = sum(1 for r in recs if r[STATUS] == 0 or r[STATUS] >= 500
                 or (r[MUST_ALLOW] and r[STATUS] != 200))
    row["notes"].append(f"ward 1 exited {exited:.1f} s after SIGTERM; back in Envoy after "
                        f"{t_end - t_start:.1f} s; {failed} failed requests")
    check(row, "drain_failed", failed)
    row["rss_before"] = [float("nan"), row["rss_before"][1]]  # a new ward 1
    return end(ctx, row)


RELOADS = 20


def reload_config(path: str, i: int) -> None:
    """Ward's config file, changed for reload `i`: even reloads add a policy
    no route uses (every cache is kept), odd ones change `cache.max_ttl`
    (both caches are cleared: every credential is read or verified again
    under load). Written as an editor would: a new file renamed over it."""
    with open(path) as f:
        config = json.load(f)
    if i % 2 == 0:
        config.setdefault("policies", {})[f"unused_{i}"] = {"mode": "required"}
    else:
        config["cache"]["max_ttl"] = f"{100 + i}s"
    with open(path + ".new", "w") as f:
        json.dump(config, f, indent=1)
    os.replace(path + ".new", path)


def reloads(ctx, i: int, result: str) -> float:
    return ctx.stack.metric(i, f'ward_config_reload_total{{result="{result}"}}')


def reload_under_load(ctx) -> dict:
    """Both wards reloaded 20 times (SIGHUP after each rewrite) under
    steady load through Envoy: nothing may fail, nothing may be allowed
    wrongly, and every reload must succeed."""
    row = begin(ctx, "reload under load",
                f"{RELOADS} config changes to both wards (SIGHUP), half keeping the caches, "
                "half clearing them")
    wards = ctx.stack.wards
    before = [reloads(ctx, w, "success") for w in range(2)]
    t_start = time.monotonic()
    for i in range(RELOADS):
        for w, ward in enumerate(wards):
            reload_config(ward.config_path, i)
            os.kill(ward.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and any(
                reloads(ctx, w, "success") < before[w] + i + 1 for w in range(2)):
            time.sleep(0.02)
        time.sleep(0.2)  # let load run on the new config
    t_end = time.monotonic()
    done = [reloads(ctx, w, "success") - before[w] for w in range(2)]
    refused = [reloads(ctx, w, "failure") for w in range(2)]
    recs = fill_load(row, ctx.load, t_start, t_end, SETTLE_S)
    failed = sum(1 for r in recs if r[STATUS] == 0 or r[STATUS] >= 500
                 or (r[MUST_ALLOW] and r[STATUS] != 200))
    row["notes"].append(f"reloads done {done[0]:.0f} / {done[1]:.0f} of {RELOADS}, "
                        f"refused {refused[0]:.0f} / {refused[1]:.0f}, in {t_end - t_start:.1f} s; "
                        f"{failed} failed requests")
    complete = all(d == RELOADS for d in done) and not any(refused)
    check(row, "reload_failed", failed if complete else max(failed, 1))
    return end(ctx, row)


def log_row(row: dict) -> None:
    log(f"  {row['fault']}: wrong allows {row['wrong_allows']}; during {row['during']}; "
        f"after {row['after']}; " + "; ".join(row["notes"]))
