"""The command line (`python3 scripts/faults ...`, as scripts/faults.sh
runs it with .venv-faults's Python): starts the deployments one after the
other (standalone Redis; with --full also Sentinel and Cluster; --only
picks some), the two wards, Envoy and the load, runs each fault in order,
prints the table, writes faults-results/<timestamp>/ and exits 0 only if
every target held."""

from __future__ import annotations

import os
import sys

if not __package__:  # run as `python3 scripts/faults`: make `faults` and `bench` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import atexit  # noqa: E402
import datetime  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import faults  # noqa: E402
from bench.machine import machine_info  # noqa: E402
from bench.procs import Proc, log, on_signal  # noqa: E402
from faults import faults_edge as edge  # noqa: E402
from faults import faults_store as store  # noqa: E402
from faults import report  # noqa: E402
from faults.creds import seed  # noqa: E402
from faults.direct import Direct  # noqa: E402
from faults.jwks_server import JwksServer  # noqa: E402
from faults.load import LoadProcess  # noqa: E402
from faults.redis_nodes import ClusterSet, SentinelSet, Standalone  # noqa: E402
from faults.rows import Foreign, fill_load, fill_revocation, new_row  # noqa: E402
from faults.settings import RATE, ROOT, SILENT_CONNS, WARD_BIN  # noqa: E402
from faults.soak import soak  # noqa: E402
from faults.stack import Run, Stack  # noqa: E402
from faults.tokens import Rsa  # noqa: E402


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="scripts/faults.sh", description=faults.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--quick", action="store_true",
                      help="standalone Redis, a subset of the faults (< 90 s)")
    mode.add_argument("--full", action="store_true",
                      help="every fault on every deployment, then the soak")
    ap.add_argument("--soak-minutes", type=int, default=30, metavar="N",
                    help="the full run's soak length (default 30; 0 skips it)")
    ap.add_argument("--only", type=deployments, metavar="LIST",
                    help="only these deployments, comma-separated: standalone, sentinel, "
                         "cluster (default: all with --full; --quick is standalone only)")
    ap.add_argument("--publish", action="store_true",
                    help="copy the table into docs/reliability.md")
    args = ap.parse_args()
    if args.only is None:
        args.only = ("standalone",) if args.quick else DEPLOYMENTS
    if args.quick and args.only != ("standalone",):
        ap.error("--quick runs on standalone Redis only; use --full --only ...")
    if args.publish and args.full and args.only != DEPLOYMENTS:
        ap.error("--publish needs every deployment: the table is published whole")
    return args


DEPLOYMENTS = ("standalone", "sentinel", "cluster")


def deployments(text: str) -> tuple:
    """--only's value: known names, kept in the run's order."""
    names = {n.strip() for n in text.split(",") if n.strip()}
    unknown = names - set(DEPLOYMENTS)
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown deployment {', '.join(sorted(unknown)) or '(none)'}; "
            f"choose from {', '.join(DEPLOYMENTS)}")
    return tuple(d for d in DEPLOYMENTS if d in names)


def mode_text(args) -> str:
    """How the run was asked for, as the table's first line says it."""
    if args.quick:
        return "--quick"
    text = f"--full, soak {args.soak_minutes} min"
    if args.only != DEPLOYMENTS:
        text += f", only {','.join(args.only)}"
    return text


def own_pids(ctx) -> list[int]:
    return [os.getpid()] + [p.pid for p in Proc.running] + (
        [ctx.load.proc.pid] if ctx.load else [])


def run_row(rows: list, fn, ctx, *args) -> None:
    t = time.monotonic()
    foreign = Foreign(own_pids(ctx))
    row = fn(ctx, *args)
    row["seconds"] = round(time.monotonic() - t, 1)
    row["foreign_cpu"] = round(foreign.done(), 2)
    edge.log_row(row)
    rows.append(row)


def baseline(ctx) -> dict:
    row = new_row("no fault", "3 s of the load alone")
    row["rss_before"] = ctx.stack.rss_mb()
    t = time.monotonic()
    time.sleep(3.0)
    fill_load(row, ctx.load, t, time.monotonic(), 0.0)
    fill_revocation(row, ctx)
    row["rss_after"] = ctx.stack.rss_mb()
    return row


def deploy(ctx, redis) -> None:
    """Points the run at a new deployment: data seeded, wards restarted on it, load restarted."""
    if ctx.load:
        ctx.load.stop()
    if ctx.redis:
        ctx.redis.stop()
    ctx.redis, ctx.writer = redis, redis.writer()
    ctx.creds = seed(ctx.writer)
    if ctx.stack is None:
        ctx.stack = Stack(ctx.run, redis.ward_store(), ctx.jwks.url)
    else:
        ctx.stack.restart_wards(redis.ward_store())
    for d in ctx.direct:
        d.close()
    ctx.direct = [Direct(g) for g, _ in ctx.stack.ports]
    ctx.load = LoadProcess(ctx.stack.envoy.http_port, ctx.creds, redis.writer_spec(), RATE)
    time.sleep(3.0)  # warm: hot credentials cached, connections open


def standalone(ctx, groups: list, args) -> None:
    log("standalone Redis")
    deploy(ctx, Standalone(ctx.run))
    rows: list = []
    groups.append(("standalone Redis", rows))
    run_row(rows, baseline, ctx)
    run_row(rows, store.redis_sigstop, ctx)
    run_row(rows, store.redis_restart, ctx)
    run_row(rows, store.redis_restart_idle, ctx)
    run_row(rows, store.pubsub_kill, ctx)
    run_row(rows, edge.bogus_addresses, ctx)
    run_row(rows, edge.reload_under_load, ctx)
    if args.full:
        for mode in ("500", "garbage", "slow"):
            run_row(rows, edge.jwks, ctx, mode)
        run_row(rows, edge.silent_connections, ctx)
        run_row(rows, edge.rolling_stop, ctx)
        if args.soak_minutes > 0:
            run_row(rows, soak, ctx, args.soak_minutes)


def sentinel(ctx, groups: list, args) -> None:
    log("Sentinel: master + replica, 3 Sentinels")
    deploy(ctx, SentinelSet(ctx.run))
    rows: list = []
    groups.append(("Sentinel (master + replica, 3 Sentinels)", rows))
    run_row(rows, store.pubsub_kill, ctx)
    run_row(rows, store.sentinel_failover, ctx, False)
    run_row(rows, store.sentinel_failover, ctx, True)


def cluster(ctx, groups: list, args) -> None:
    log("Cluster: 3 masters + 3 replicas")
    deploy(ctx, ClusterSet(ctx.run))
    rows: list = []
    groups.append(("Cluster (3 masters + 3 replicas)", rows))
    run_row(rows, store.pubsub_kill, ctx)
    run_row(rows, store.cluster_master_killed, ctx)


RUNS = {"standalone": standalone, "sentinel": sentinel, "cluster": cluster}


def main() -> int:
    args = parse_args()
    if not os.path.exists(WARD_BIN):
        raise SystemExit(f"{WARD_BIN} missing: run scripts/faults.sh (it builds ward)")
    edge.raise_nofile(2 * SILENT_CONNS + 2048)
    atexit.register(Proc.stop_all)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    started = time.monotonic()
    run = Run(args.quick)
    ctx = SimpleNamespace(run=run, redis=None, writer=None, creds=None, stack=None, direct=[],
                          load=None, jwks=JwksServer(Rsa().jwks()))
    ctx.own_pids = lambda: own_pids(ctx)
    groups = []
    res = {"started": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
           "mode": mode_text(args),
           "ward_bin": os.path.relpath(WARD_BIN, ROOT), "rate": RATE,
           "machine": machine_info(WARD_BIN), "groups": groups}
    log(f"results in {os.path.relpath(run.outdir, ROOT)}; ward {res['ward_bin']}")
    try:
        for name in args.only:
            RUNS[name](ctx, groups, args)
        res["load_stats"] = ctx.load.ask("stats")
    finally:
        if ctx.load:
            ctx.load.stop()
        if ctx.stack:
            ctx.stack.stop()
        if ctx.redis:
            ctx.redis.stop()
        ctx.jwks.stop()
    res["wall_s"] = time.monotonic() - started
    res["passed"] = all(r.get("skipped") or (r["wrong_allows"] == 0 and all(
        t["met"] for t in r["targets"].values())) for _, rows in groups for r in rows)
    md = report.render(res)
    report.write(run.outdir, res, md)
    print()
    print(md)
    log(f"total {res['wall_s']:.0f} s; wrote {os.path.relpath(run.outdir, ROOT)}/"
        "{results.json,results.md}")
    if args.publish:
        report.publish(md)
    return 0 if res["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
