"""The memory phase: ward's RSS idle, then with 10k, 100k (and in a full
run 1M) distinct HS256 identities cached, and the bytes each entry costs."""

from __future__ import annotations

import json
import os
import time

from bench.bed import Bed, Ward
from bench.measure import rss_kb
from bench.procs import log, run_tool
from bench.settings import LOAD_CPU, LOADGEN_BIN, SERVER_CPU


def phase_memory(bed: Bed) -> dict:
    steps = [10_000, 100_000] + ([] if bed.quick else [1_000_000])
    log(f"memory: ward RSS idle and with {', '.join(f'{s:,}' for s in steps)} cached identities "
        f"(distinct HS256 tokens)")
    ward = Ward(bed, SERVER_CPU, cache={"max_entries": 2_000_000, "max_ttl": "3600s"})
    out = {"steps": []}
    try:
        time.sleep(0.5)
        idle = rss_kb(ward.pid)
        out["idle_rss_kb"] = idle
        log(f"  idle RSS {idle / 1024:.1f} MB")
        filled = 0
        for target in steps:
            n = target - filled
            path = os.path.join(bed.tmp, bed.name("fill") + ".json")
            run_tool([LOADGEN_BIN, "run", "--addr", f"127.0.0.1:{ward.grpc_port}",
                      "--conns", "4", "--depth", "32", "--warmup", "0", "--duration", "600",
                      "--gen-hs256", str(n), "--gen-offset", str(filled), "--out", path],
                     LOAD_CPU, 900, "cache fill")
            with open(path) as f:
                rep = json.load(f)
            if rep["all"]["allow"] != n:
                raise RuntimeError(f"cache fill: expected {n} allows, got {rep['all']}")
            filled = target
            time.sleep(1.0)
            rss = rss_kb(ward.pid)
            m = ward.metrics()
            misses = sum(v for k, v in m.items()
                         if k.startswith("ward_cache_requests_total") and 'result="miss"' in k)
            step = {"entries": target, "rss_kb": rss,
                    "bytes_per_entry": (rss - idle) * 1024 / target,
                    "fill_rate": rep["rps"], "ward_cache_misses": misses}
            out["steps"].append(step)
            log(f"  {target:>9,} entries: RSS {rss / 1024:.1f} MB, "
                f"{step['bytes_per_entry']:.0f} B/entry (filled at {rep['rps']:.0f}/s)")
    finally:
        ward.stop()
    return out
