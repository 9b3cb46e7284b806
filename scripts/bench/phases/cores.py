"""The cores phase (issue 16): what a second runtime worker costs per check.

This bed has no spare core for a load generator, so it measures efficiency,
not scaling: ward pinned to one CPU, at a fixed rate both shapes sustain,
the CPU ward spends per check with `runtime.worker_threads` 1 and 2, with 1
client connection (Envoy's shape: one connection per Envoy worker) and 4.
Target: 2 workers cost <= 1.1 x the CPU per check of 1. Repetitions are
interleaved; the ratio is taken per repetition, then the median."""

from __future__ import annotations

import json
import os

from bench.bed import Bed, Ward
from bench.measure import CLK_TCK, Foreign, cpu_ticks, measure, median
from bench.procs import log, run_tool
from bench.scenarios import hot_token_args
from bench.settings import DIRECT_DEPTH, LOAD_CPU, LOADGEN_BIN, SERVER_CPU

WORKERS = (1, 2)
CONNS = (1, 4)


def cores_once(bed: Bed, workers: int, conns: int, rate: int, duration: float,
               warmup: float) -> dict:
    ward = Ward(bed, SERVER_CPU, extra={"runtime": {"worker_threads": workers}})
    try:
        path = os.path.join(bed.tmp, bed.name(f"cores-w{workers}-c{conns}") + ".json")
        foreign = Foreign([ward.pid])
        c0 = cpu_ticks(ward.pid)
        run_tool([LOADGEN_BIN, "run", "--addr", f"127.0.0.1:{ward.grpc_port}",
                  "--conns", str(conns), "--depth", str(DIRECT_DEPTH),
                  "--warmup", str(warmup), "--duration", str(duration), "--rps", str(rate),
                  "--out", path] + hot_token_args(bed), LOAD_CPU, duration + warmup + 60,
                 f"cores w{workers} c{conns}")
        c1 = cpu_ticks(ward.pid)
        with open(path) as f:
            rep = json.load(f)
        m = rep["measured"]
        if m["deny"] or m["grpc_error"] or m["transport_error"] or m["allow"] == 0:
            raise RuntimeError(f"cores w{workers} c{conns}: expected only allows, got {m}")
        sent = rep["all"]["sent"]
        return {"workers": workers, "conns": conns, "rps": rep["rps"],
                "cpu_us_per_check": (c1 - c0) / CLK_TCK / sent * 1e6 if sent else None,
                "p50_us": rep["latency_us"]["p50"], "p99_us": rep["latency_us"]["p99"],
                "kept_up": rep["rps"] >= 0.97 * rate, "foreign_cpu": foreign.done()}
    finally:
        ward.stop()


def phase_cores(bed: Bed) -> dict:
    q = bed.quick
    warmup, duration = (0.5, 3.0) if q else (1.0, 6.0)
    reps = 2 if q else 4
    rate = 20000
    log(f"cores: ward on CPU {SERVER_CPU}, open loop at {rate} Check/s (JWT cache hit), "
        f"worker_threads {WORKERS} x conns {CONNS}, {reps} interleaved repetitions")
    runs: dict[str, list[dict]] = {}
    for rep in range(reps):
        for conns in CONNS:
            for workers in WORKERS:
                key = f"w{workers}_c{conns}"
                r = measure(bed, f"cores {key}", lambda: cores_once(
                    bed, workers, conns, rate, duration, warmup), attempts=2)
                runs.setdefault(key, []).append(r)
                log(f"  [{rep + 1}/{reps}] workers {workers} conns {conns}: "
                    f"{r['cpu_us_per_check']:.2f} us CPU/check, {r['rps']:.0f}/s, "
                    f"p50 {r['p50_us']:.0f} us, p99 {r['p99_us']:.0f} us")
    out = {"rate": rate, "reps": reps, "duration_s": duration, "runs": runs, "ratios": {}}
    for conns in CONNS:
        ratios = [two["cpu_us_per_check"] / one["cpu_us_per_check"]
                  for one, two in zip(runs[f"w1_c{conns}"], runs[f"w2_c{conns}"])]
        out["ratios"][f"conns_{conns}"] = median(ratios)
        out[f"cpu_us_w1_c{conns}"] = median([r["cpu_us_per_check"] for r in runs[f"w1_c{conns}"]])
        out[f"cpu_us_w2_c{conns}"] = median([r["cpu_us_per_check"] for r in runs[f"w2_c{conns}"]])
        log(f"  conns {conns}: 2 workers cost {out['ratios'][f'conns_{conns}']:.3f} x the CPU "
            f"per check of 1 (target <= 1.1)")
    return out
