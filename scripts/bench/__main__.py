"""The command line (`python3 scripts/bench ...`, as scripts/bench.sh runs
it, or `python3 -m bench` with scripts/ on the path): checks the tools are
there, runs the phases asked for in order, and hands the results to the
report, the chart and results.py."""

from __future__ import annotations

import os
import sys

if not __package__:  # run as `python3 scripts/bench`: make `bench` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import atexit  # noqa: E402
import datetime  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402

import bench  # noqa: E402
from bench.bed import Bed  # noqa: E402
from bench.chart import render_svg  # noqa: E402
from bench.machine import machine_info  # noqa: E402
from bench.measure import median, wait_quiet  # noqa: E402
from bench.phases.cores import phase_cores  # noqa: E402
from bench.phases.direct import phase_direct  # noqa: E402
from bench.phases.envoy import phase_envoy  # noqa: E402
from bench.phases.memory import phase_memory  # noqa: E402
from bench.phases.tail import phase_tail  # noqa: E402
from bench.procs import Proc, log, on_signal  # noqa: E402
from bench.report import render_markdown  # noqa: E402
from bench.results import publish, render_again, write_run  # noqa: E402
from bench.settings import (BASELINE_BIN, BASELINE_MODULE, CHECKOUT_WARD_BIN, LOAD_CPU,  # noqa: E402
                            LOADGEN_BIN, MODULE_DIR, NOOP_BIN, NOOP_MODULE_DIR, ROOT,
                            SERVER_CPU, WARD_BIN, module_file,
                            module_problem)
from bench.targets import compute_targets  # noqa: E402

PHASES = ("direct", "envoy", "memory", "tail", "cores")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="scripts/bench.sh", description=bench.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="shorter runs (~2 min)")
    ap.add_argument("--only", default="direct,envoy,memory,tail,cores",
                    help="comma-separated phases to run (default: all)")
    ap.add_argument("--scenarios", default="", metavar="NAMES",
                    help="only these comma-separated scenarios (and each phase's baseline: the "
                         "no-op in the direct phase, Envoy alone in the envoy phase); the targets "
                         "of the others read as not measured")
    ap.add_argument("--authz-cpu", default=SERVER_CPU, choices=[SERVER_CPU, LOAD_CPU],
                    help=f"CPU for the ext_authz server behind Envoy (default {SERVER_CPU}: "
                         "shared with Envoy, so its CPU costs proxy throughput)")
    ap.add_argument("--ward-bin", default=WARD_BIN, metavar="PATH",
                    help="the ward build to measure (env WARD_BIN; default: this checkout's "
                         "target/release/ward)")
    ap.add_argument("--baseline-bin", default=BASELINE_BIN, metavar="PATH",
                    help="direct phase: also run every ward scenario against this build, "
                         "alternating with the other, and report after / before "
                         "(env WARD_BASELINE_BIN)")
    ap.add_argument("--baseline-module", default=BASELINE_MODULE, metavar="PATH",
                    help="envoy phase: also run every ward-module scenario with this build of "
                         "the module (a libward_envoy.so, or its directory), alternating with "
                         "the other, and report after / before (env WARD_BASELINE_MODULE)")
    ap.add_argument("--tail-fresh-every", type=int, default=20, metavar="N",
                    help="tail phase: 1 request in N carries a fresh ES256 token (default 20: "
                         "5 %%; 5 is the 20 %% variant)")
    ap.add_argument("--tail-rps", type=int, default=0, metavar="RATE",
                    help="tail phase: offer this many Check/s (default: half of ward's capacity "
                         "for the mix, from the direct phase, else of 40,000)")
    ap.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                    help="first wait up to this long for other processes to leave the CPUs idle")
    ap.add_argument("--render", metavar="RESULTS_JSON",
                    help="only re-render results.md and chart.svg next to an existing results.json")
    ap.add_argument("--publish", action="store_true",
                    help="copy the chart and table into docs/ (docs/bench/latest.svg, docs/benchmarks.md)")
    args = ap.parse_args()
    args.phases = [p.strip() for p in args.only.split(",") if p.strip()]
    for p in args.phases:
        if p not in PHASES:
            ap.error(f"unknown phase {p}")
    if args.tail_fresh_every < 2:
        ap.error("--tail-fresh-every must be at least 2")
    if args.baseline_bin and "direct" not in args.phases:
        ap.error("--baseline-bin compares builds in the direct phase: add it to --only")
    if args.baseline_module and "envoy" not in args.phases:
        ap.error("--baseline-module compares modules in the envoy phase: add it to --only")
    if args.publish and (args.baseline_bin or args.baseline_module or
                         os.path.realpath(args.ward_bin) != os.path.realpath(CHECKOUT_WARD_BIN)):
        ap.error("--publish publishes this checkout's build alone: drop --ward-bin/"
                 "--baseline-bin/--baseline-module")
    return args


def check_tools(args: argparse.Namespace) -> None:
    for b in (args.ward_bin, NOOP_BIN, LOADGEN_BIN):
        if not os.path.exists(b):
            raise SystemExit(f"{b} missing: run scripts/bench.sh (it builds in release mode)")
    if "envoy" in args.phases:
        for so in (os.path.join(MODULE_DIR, "libward_envoy.so"),
                   os.path.join(NOOP_MODULE_DIR, "libward_noop.so")):
            if problem := module_problem(so):
                raise SystemExit(problem)
    if args.baseline_bin and not os.access(args.baseline_bin, os.X_OK):
        raise SystemExit(f"--baseline-bin {args.baseline_bin}: not an executable file")
    if args.baseline_module and not os.path.isfile(module_file(args.baseline_module)):
        raise SystemExit(f"--baseline-module {args.baseline_module}: no libward_envoy.so there")
    if args.baseline_module and (problem := module_problem(module_file(args.baseline_module))):
        raise SystemExit(f"--baseline-module: {problem}")
    for tool in ("h2load", "taskset", "nginx"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            raise SystemExit(f"{tool} missing: run scripts/bench.sh (it installs it)")
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("needs at least 2 CPUs (server and load are pinned apart)")


def main() -> int:
    args = parse_args()
    if args.render:
        render_again(args.render)
        return 0
    check_tools(args)

    atexit.register(Proc.stop_all)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)

    bed = Bed(args)
    started = time.monotonic()
    res = bed.results
    res["started"] = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    res["quick"] = args.quick
    res["machine"] = machine_info(args.ward_bin)
    log(f"results in {os.path.relpath(bed.outdir, ROOT)}; {res['machine']['nproc']} CPUs, "
        f"{res['machine']['cpu_model']}")
    if args.wait_quiet > 0:
        busy = wait_quiet(args.wait_quiet)
        log(f"machine busy before start: {busy * 100:.0f}% of a CPU")
    timings = {}
    for p in args.phases:
        t = time.monotonic()
        if p == "direct":
            res["direct"] = phase_direct(bed)
        elif p == "envoy":
            res["envoy"] = phase_envoy(bed)
        elif p == "memory":
            res["memory"] = phase_memory(bed)
        elif p == "tail":
            res["tail"] = phase_tail(bed, res.get("direct"))
        elif p == "cores":
            res["cores"] = phase_cores(bed)
        timings[p] = time.monotonic() - t
        log(f"{p} done in {timings[p]:.0f}s")
    res["phase_s"] = timings
    res["wall_s"] = time.monotonic() - started
    res["targets"] = compute_targets(res)
    res["foreign_cpu"] = {"median": median(bed.foreign) if bed.foreign else 0.0,
                          "max": max(bed.foreign) if bed.foreign else 0.0}
    if res["foreign_cpu"]["max"] > 0.10:
        log(f"WARNING: other processes used up to {res['foreign_cpu']['max'] * 100:.0f}% of a CPU "
            f"during measurements (median {res['foreign_cpu']['median'] * 100:.0f}%): numbers are noisy")
    md = render_markdown(res)
    svg = render_svg(res)
    write_run(bed.outdir, bed.tmp, res, md, svg)
    print()
    print(md)
    log(f"total {res['wall_s']:.0f}s; wrote {os.path.relpath(bed.outdir, ROOT)}/"
        f"{{results.json,results.md,chart.svg}}")
    if args.publish:
        publish(res, md, svg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
