"""The direct phase: gRPC Check straight to one server (ward or the no-op
baseline) on CPU 0, load from CPU 1; every scenario fresh, repetitions
interleaved, ratios to the no-op taken per repetition. With a baseline
build (--baseline-bin), each ward scenario also runs against it, alternating
with the build under test (compare.py)."""

from __future__ import annotations

import json
import os
import time

from bench.bed import Bed, Noop, Ward
from bench.compare import AFTER, BEFORE, build_order, compare_builds
from bench.measure import (CLK_TCK, Foreign, cpu_split, cpu_ticks, measure, median, ms,
                           parse_h2load)
from bench.procs import log, run_tool
from bench.scenarios import DirectScenario, direct_scenarios
from bench.settings import (CHECK_PATH, DIRECT_CONNS, DIRECT_DEPTH, LOAD_CPU, LOADGEN_BIN,
                            SERVER_CPU)


def run_direct_once(bed: Bed, sc: DirectScenario, baseline: bool = False) -> dict:
    helpers = []
    if sc.server == "ward":
        extra = dict(sc.ward_extra)
        if sc.setup:
            extra.update(sc.setup(bed))
            if bed.redis is not None:
                helpers.append(bed.redis.pid)
        server = Ward(bed, SERVER_CPU, extra=extra, baseline=baseline)
    else:
        server = Noop(bed, SERVER_CPU, shaped=sc.server == "noop_shaped",
                      lean=sc.server == "noop_lean")
    try:
        token_args = sc.tokens(bed) if sc.tokens else []
        warmup, duration = bed.direct_warmup, bed.direct_duration
        foreign = Foreign([server.pid] + helpers)
        h0 = sum(cpu_ticks(p) for p in helpers)
        (u0, s0), t0 = cpu_split(server.pid), time.monotonic()
        c0 = u0 + s0
        if sc.tool == "loadgen":
            out_path = os.path.join(bed.tmp, bed.name(f"loadgen-{sc.name}") + ".json")
            run_tool([LOADGEN_BIN, "run", "--addr", f"127.0.0.1:{server.grpc_port}",
                      "--conns", str(DIRECT_CONNS), "--depth", str(DIRECT_DEPTH),
                      "--warmup", str(warmup), "--duration", str(duration), "--out", out_path]
                     + token_args, LOAD_CPU, warmup + duration + 60, f"loadgen {sc.name}")
            c1, t1 = cpu_ticks(server.pid), time.monotonic()
            with open(out_path) as f:
                rep = json.load(f)
            total = rep["all"]["sent"]
            m = rep["measured"]
            bad = m["deny"] + m["grpc_error"] + m["transport_error"]
            if sc.expect_allow and (bad or m["allow"] == 0):
                raise RuntimeError(f"{sc.name}: expected only allows, got {m}")
            r = {"rps": rep["rps"], "p50_us": rep["latency_us"]["p50"],
                 "p99_us": rep["latency_us"]["p99"], "p999_us": rep["latency_us"]["p999"],
                 "max_us": rep["latency_us"]["max"], "requests": total,
                 "window_s": rep["window_s"], "allow": rep["all"]["allow"]}
        else:
            frame = os.path.join(bed.tmp, f"frame-{sc.name}.bin")
            tokfile = token_args[1] if token_args else None
            run_tool([LOADGEN_BIN, "frame", "--out", frame]
                     + (["--token-file", tokfile] if tokfile else []), None, 30, "frame")
            out = run_tool(["h2load", f"-c{DIRECT_CONNS}", f"-m{DIRECT_DEPTH}",
                            f"-D{ms(duration)}", f"--warm-up-time={ms(warmup)}", "-d", frame,
                            "-H", "content-type: application/grpc", "-H", "te: trailers",
                            f"http://127.0.0.1:{server.grpc_port}{CHECK_PATH}"],
                           LOAD_CPU, warmup + duration + 60, f"h2load {sc.name}")
            c1, t1 = cpu_ticks(server.pid), time.monotonic()
            h = parse_h2load(out)
            if h["non2xx"] or h["failed"] or h["errored"]:
                raise RuntimeError(f"{sc.name}: h2load saw failures: {h}")
            r = {"rps": h["rps"], "requests": None}
            total = None
        r["foreign_cpu"] = foreign.done()
        if helpers:  # Redis: on the load CPU, not counted in the server's CPU
            r["redis_cpu_s"] = (sum(cpu_ticks(p) for p in helpers) - h0) / CLK_TCK
        cpu_s = (c1 - c0) / CLK_TCK
        r["server_cpu_s"] = cpu_s
        u1, s1 = cpu_split(server.pid)
        r["server_sys_share"] = (s1 - s0) / max(u1 + s1 - c0, 1)  # kernel share of its CPU
        r["server_util"] = cpu_s / max(t1 - t0, 1e-9)
        if total:
            r["cpu_ms_per_1k"] = cpu_s * 1e6 / total  # ms of CPU per 1000 checks
        decisions = server.decisions(sc.method)
        if decisions is not None:
            allow, deny = decisions
            r["ward_allow"], r["ward_deny"] = allow, deny
            if sc.expect_allow and (deny > 0 or allow == 0 or (total and allow < total)):
                raise RuntimeError(f"{sc.name}: ward metrics say allow={allow} deny={deny} "
                                   f"(method {sc.method or 'any'}), "
                                   f"loadgen sent {total}")
        return r
    finally:
        server.stop()


def log_run(rep: int, reps: int, what: str, r: dict) -> None:
    log(f"  [{rep + 1}/{reps}] {what:18s} {r['rps']:9.0f} Check/s"
        + (f"  p99 {r['p99_us'] / 1000:.2f} ms" if "p99_us" in r else "")
        + (f"  {r['cpu_ms_per_1k']:.1f} ms CPU/1k" if "cpu_ms_per_1k" in r else "")
        + f"  server CPU {r['server_util'] * 100:.0f}%"
        + (f" ({r['server_sys_share'] * 100:.0f}% kernel)" if "server_sys_share" in r else "")
        + (f"  (other processes: {r['foreign_cpu'] * 100:.0f}% CPU)"
           if r["foreign_cpu"] > 0.05 else ""))


def phase_direct(bed: Bed) -> dict:
    scenarios = direct_scenarios(bed)
    q = bed.quick
    bed.direct_warmup, bed.direct_duration = (0.5, 2.0) if q else (1.0, 4.0)
    bed.direct_window = bed.direct_warmup + bed.direct_duration
    reps = 2 if q else 3
    log(f"direct: {len(scenarios)} scenarios x {reps} repetitions, "
        f"{DIRECT_CONNS} conns x {DIRECT_DEPTH} in flight, "
        f"{bed.direct_warmup}s warm-up + {bed.direct_duration}s")
    for sc in scenarios:  # mint before timing anything
        if sc.tokens:
            sc.tokens(bed)
    runs: dict[str, list[dict]] = {sc.name: [] for sc in scenarios}
    # The baseline build's runs of the ward scenarios (none without one).
    before: dict[str, list[dict]] = {sc.name: [] for sc in scenarios
                                     if bed.baseline_bin and sc.server == "ward"}
    for rep in range(reps):
        for sc in scenarios:
            for build in build_order(rep) if sc.name in before else (AFTER,):
                is_base = build == BEFORE
                what = sc.name + ((" (before)" if is_base else " (after)")
                                  if sc.name in before else "")
                r = measure(bed, what, lambda: run_direct_once(bed, sc, baseline=is_base))
                (before if is_base else runs)[sc.name].append(r)
                log_run(rep, reps, what, r)
    out = {"conns": DIRECT_CONNS, "depth": DIRECT_DEPTH, "reps": reps,
           "warmup_s": bed.direct_warmup, "duration_s": bed.direct_duration, "scenarios": {}}
    base = None
    for sc in scenarios:
        rs = runs[sc.name]
        med = {k: median([r.get(k) for r in rs]) for k in rs[0] if isinstance(rs[0][k], (int, float))}
        out["scenarios"][sc.name] = {"label": sc.label, "tool": sc.tool, "crosscheck": sc.crosscheck,
                                     "median": med, "runs": rs}
        if sc.name == "noop":
            base = med
    # Ratios against the baseline, per repetition (same run), then median.
    for sc in scenarios:
        s = out["scenarios"][sc.name]
        ref = "h2load_noop" if sc.tool == "h2load" else "noop"
        pairs = list(zip(runs[sc.name], runs[ref]))
        s["rps_ratio"] = median([a["rps"] / b["rps"] for a, b in pairs])
        if "cpu_ms_per_1k" in s["median"] and base and "cpu_ms_per_1k" in base:
            s["cpu_ratio"] = median([a["cpu_ms_per_1k"] / b["cpu_ms_per_1k"] for a, b in pairs])
        if "noop_lean" in runs and sc.tool == "loadgen":
            # Against the no-op that decodes requests as ward does: what
            # ward's own work costs, apart from the decoding it saves.
            s["rps_ratio_lean"] = median([a["rps"] / b["rps"]
                                          for a, b in zip(runs[sc.name], runs["noop_lean"])])
    if before:
        out["baseline"] = compare_builds(
            bed.ward_bin, bed.baseline_bin, {sc.name: sc.label for sc in scenarios}, runs, before,
            {sc.name: "h2load_noop" if sc.tool == "h2load" else "noop" for sc in scenarios})
    return out
