"""The tail phase: a long open-loop run at half ward's capacity, 1 request
in 20 with a fresh ES256 token (`--tail-fresh-every`; 5 is the 20 % variant)
and cache entries expiring meanwhile, to show stalls (p99.9 / p50, the
longest gap, the slowest request each second) rather than queueing."""

from __future__ import annotations

import json
import os
from typing import Optional

from bench.bed import Bed, Noop, Ward
from bench.credentials import token_pool
from bench.measure import CLK_TCK, Foreign, cpu_ticks, measure
from bench.procs import log, run_tool
from bench.settings import DIRECT_CONNS, DIRECT_DEPTH, LOAD_CPU, LOADGEN_BIN, SERVER_CPU


# The default rate. Half of the closed-loop maximum overloads ward in open
# loop (a check costs ~28 us of CPU there, ~9 us batched in closed loop:
# the published run of 2026-12-06 offered 39,000/s and ward's CPU hit 89 %,
# so the tail measured queueing); at 20,000/s ward's CPU is near 60 %.
DEFAULT_RATE = 20000


def phase_tail(bed: Bed, direct: Optional[dict]) -> dict:
    duration = 15.0 if bed.quick else 60.0
    warmup = 1.0
    every = bed.tail_fresh_every  # 20: 5 % fresh
    rate = bed.tail_rps or DEFAULT_RATE
    fresh_needed = int(rate * (duration + warmup) / every * 1.1) + 1000
    max_ttl = "2s"
    life = int(duration + warmup + 300)
    log(f"tail: {duration:.0f}s open-loop at {rate} Check/s, 1 in {every} with a fresh ES256 "
        f"token, 1000 hot tokens, cache.max_ttl {max_ttl}, tokens live {life}s; "
        f"the no-op server at the same rate first (the bed's floor)")
    hot = token_pool(bed, "ES256", 1000, life, "tailhot-", reusable=False)
    fresh = token_pool(bed, "ES256", fresh_needed, life, "tailfresh-", reusable=False)
    noop = measure(bed, "tail (no-op)", lambda: noop_once(bed, rate, duration, warmup),
                   attempts=2)
    out = measure(bed, "tail", lambda: tail_once(bed, rate, duration, warmup, every, max_ttl,
                                                 hot, fresh), attempts=2)
    out["noop"] = noop
    out["p999_vs_noop"] = out["p999_us"] / max(noop["p999_us"], 1e-9)
    log(f"  ward p99.9 / the no-op's at the same rate: {out['p999_vs_noop']:.2f}")
    return out


def noop_once(bed: Bed, rate: int, duration: float, warmup: float) -> dict:
    """The do-nothing server under the same open loop: what the bed itself
    (the load generator, the VM, the kernel) adds to every latency."""
    noop = Noop(bed, SERVER_CPU)
    try:
        path = os.path.join(bed.tmp, bed.name("tail-noop") + ".json")
        foreign = Foreign([noop.pid])
        run_tool([LOADGEN_BIN, "run", "--addr", f"127.0.0.1:{noop.grpc_port}",
                  "--conns", str(DIRECT_CONNS), "--depth", str(DIRECT_DEPTH),
                  "--warmup", str(warmup), "--duration", str(duration), "--rps", str(rate),
                  "--out", path], LOAD_CPU, duration + 120, "tail no-op run")
        with open(path) as f:
            rep = json.load(f)
        lat = rep["latency_us"]
        out = {
            "rps": rep["rps"], "p50_us": lat["p50"], "p99_us": lat["p99"],
            "p999_us": lat["p999"], "max_us": lat["max"],
            "p999_over_p50": lat["p999"] / max(lat["p50"], 1e-9),
            "per_second_max_ms": [round(v / 1000, 2) for v in rep.get("per_second_max_us", [])][: int(duration)],
            "foreign_cpu": foreign.done(),
        }
        log(f"  no-op: {out['rps']:.0f} Check/s, p50 {lat['p50']:.0f} us, p99 {lat['p99']:.0f} us, "
            f"p99.9 {lat['p999']:.0f} us (x{out['p999_over_p50']:.1f}), max {lat['max'] / 1000:.1f} ms")
        return out
    finally:
        noop.stop()


def tail_once(bed: Bed, rate: int, duration: float, warmup: float, every: int, max_ttl: str,
              hot: str, fresh: str) -> dict:
    ward = Ward(bed, SERVER_CPU, cache={"max_entries": 200_000, "max_ttl": max_ttl})
    try:
        path = os.path.join(bed.tmp, bed.name("tail") + ".json")
        foreign = Foreign([ward.pid])
        c0 = cpu_ticks(ward.pid)
        run_tool([LOADGEN_BIN, "run", "--addr", f"127.0.0.1:{ward.grpc_port}",
                  "--conns", str(DIRECT_CONNS), "--depth", str(DIRECT_DEPTH),
                  "--warmup", str(warmup), "--duration", str(duration), "--rps", str(rate),
                  "--tokens", hot, "--fresh", fresh, "--fresh-every", str(every),
                  "--out", path], LOAD_CPU, duration + 120, "tail run")
        c1 = cpu_ticks(ward.pid)
        foreign_cpu = foreign.done()
        with open(path) as f:
            rep = json.load(f)
        m = rep["measured"]
        if m["deny"] or m["grpc_error"] or m["transport_error"]:
            raise RuntimeError(f"tail run: not all allowed: {m}")
        metrics = ward.metrics()
        lat = rep["latency_us"]
        per_s = rep["per_second"][: int(duration)]
        out = {
            "duration_s": duration, "target_rps": rate, "rps": rep["rps"],
            "fresh_every": every, "max_ttl": max_ttl,
            "p50_us": lat["p50"], "p99_us": lat["p99"], "p999_us": lat["p999"],
            "max_us": lat["max"], "p999_over_p50": lat["p999"] / max(lat["p50"], 1e-9),
            "longest_gap_ms": rep["longest_gap_ms"],
            "per_second_min": min(per_s) if per_s else None,
            "per_second_max": max(per_s) if per_s else None,
            "ward_cpu_util": (c1 - c0) / CLK_TCK / rep["elapsed_s"],
            "jwt_verifications": metrics.get("ward_jwt_verifications_total"),
            "requests": rep["all"]["sent"],
            "foreign_cpu": foreign_cpu,
            "kept_up": rep["rps"] >= 0.97 * rate,
            "fresh_latency_us": rep.get("fresh_latency_us"),
            "per_second_max_ms": [round(v / 1000, 2) for v in rep.get("per_second_max_us", [])][: int(duration)],
        }
        if not out["kept_up"]:
            log(f"  WARNING: ward answered {rep['rps']:.0f}/s of the {rate}/s offered: "
                f"the latencies include queueing")
        log(f"  {out['rps']:.0f} Check/s, p50 {lat['p50']:.0f} us, p99 {lat['p99']:.0f} us, "
            f"p99.9 {lat['p999']:.0f} us (x{out['p999_over_p50']:.1f}), max {lat['max'] / 1000:.1f} ms, "
            f"longest gap {rep['longest_gap_ms']:.1f} ms, ward CPU {out['ward_cpu_util'] * 100:.0f}%")
        fl = out["fresh_latency_us"]
        if fl:
            log(f"  fresh-token requests: p50 {fl['p50']:.0f} us, p99 {fl['p99']:.0f} us, "
                f"max {fl['max'] / 1000:.1f} ms")
        log("  slowest request per second (ms): "
            + " ".join(f"{v:.1f}" for v in out["per_second_max_ms"]))
        return out
    finally:
        ward.stop()
