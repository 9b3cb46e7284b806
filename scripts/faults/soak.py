"""The soak: the load keeps running with churn (every request's token
new, fresh sessions, 5 recently used sessions revoked per second and sent
again as credentials that must be denied once the revocation is 1 s old),
and each minute records both wards' RSS, the p99, the answers and the
wrong allows. Targets: RSS flat within 10 % once the caches are full
(the token cache holds 120 s of new tokens, so from minute 3 on), and the
p99 of the last third (10 min of 30) at most 1.5 x the first third's."""

from __future__ import annotations

import time

from bench.procs import log
from faults.load import DONE, SCHED
from faults.rows import check, new_row, pct, split, wrong_allows

CACHES_FULL_MIN = 3  # minute from which the caches are full (cache.max_ttl 120 s)


def soak(ctx, minutes: int) -> dict:
    row = new_row(f"soak {minutes} min", f"{minutes} min of churn: new tokens and sessions, "
                  "5 revocations/s; RSS and p99 per minute")
    row["rss_before"] = ctx.stack.rss_mb()
    ctx.load.ask("churn", {"per_s": 5, "grace": 1.0})
    t0 = time.monotonic()
    per_min = []
    lats: list[list[float]] = []
    all_status = ""
    for m in range(minutes):
        t_lo = t0 + 60 * m
        t_hi = t_lo + 60
        time.sleep(max(0.0, t_hi + 2.5 - time.monotonic()))
        recs = ctx.load.records(t_lo, t_hi)
        ctx.load.ask("drop", t_hi)
        lat = [(r[DONE] - r[SCHED]) * 1000 for r in recs]
        wa = wrong_allows(recs)
        lats.append(lat)
        row["wrong_allows"] += wa
        entry = {"minute": m + 1, "rss_mb": ctx.stack.rss_mb(), "p99_ms": pct(lat, 99),
                 "requests": len(recs), "wrong_allows": wa, "answers": split(recs)}
        per_min.append(entry)
        all_status = entry["answers"]
        log(f"  soak minute {m + 1}: RSS {entry['rss_mb'][0]:.1f} / {entry['rss_mb'][1]:.1f} MB, "
            f"p99 {entry['p99_ms']:.1f} ms, {entry['answers']}")
    ctx.load.ask("churn", None)
    row["per_minute"] = per_min
    row["during"] = all_status + " (last minute)"
    row["after"] = ""
    row["p99_during_ms"] = max((e["p99_ms"] or 0) for e in per_min) if per_min else None
    row["rss_after"] = ctx.stack.rss_mb()
    ref = min(CACHES_FULL_MIN, minutes) - 1
    if minutes > CACHES_FULL_MIN:
        growth = max((per_min[-1]["rss_mb"][i] - per_min[ref]["rss_mb"][i])
                     / per_min[ref]["rss_mb"][i] for i in range(2))
        check(row, "soak_rss_growth", round(growth, 3))
        third = max(1, minutes // 3)
        first = pct([v for m in lats[:third] for v in m], 99)
        last = pct([v for m in lats[-third:] for v in m], 99)
        ratio = last / first if first and last else None
        check(row, "soak_p99_ratio", None if ratio is None else round(ratio, 2))
        row["notes"].append(f"RSS growth from minute {ref + 1} to {minutes}: {growth * 100:.1f} %; "
                            f"p99 of the last {third} min {last:.1f} ms, of the first {third} min "
                            f"{first:.1f} ms")
    return row
