"""The results: one markdown table (the same rows for --quick and --full),
the targets below it, results.json beside it, and with --publish the
table between the markers in docs/reliability.md."""

from __future__ import annotations

import json
import math
import os

from bench.procs import log
from faults.settings import ROOT, TARGETS

BEGIN, END = "<!-- faults:results:begin -->", "<!-- faults:results:end -->"


def ms(v) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1f}"


def mb(pair) -> str:
    if not pair:
        return "–"
    return " / ".join("–" if v is None or math.isnan(v) else f"{v:.0f}" for v in pair)


def revocation(row: dict) -> str:
    rev = row.get("revocation")
    if not rev:
        return "–"
    parts = []
    for w in rev["wards"]:
        parts.append("missed %d" % w["missed"] if w["missed"] else ms(w["p99"]))
    return " / ".join(parts)


def recovery(row: dict) -> str:
    wards = row.get("recovery_wards_ms")
    if wards:
        return " / ".join(ms(v) for v in wards)
    return ms(row.get("recovery_ms"))


def cpu(row: dict) -> str:
    """Other processes' CPU meanwhile (noise on a shared machine)."""
    v = row.get("foreign_cpu")
    return "–" if v is None else f"{v * 100:.0f} %"


def verdict(row: dict) -> str:
    if row.get("skipped"):
        return "not run"
    bad = [k for k, t in row["targets"].items() if not t["met"]]
    if row["wrong_allows"]:
        bad.insert(0, "wrong_allows")
    return "ok" if not bad else "**FAIL** " + ", ".join(bad)


def render(res: dict) -> str:
    lines = [f"Run of {res['started']}: {res['mode']}, ward {res['ward_bin']} "
             f"({res['machine']['nproc']} CPUs, {res['machine']['cpu_model']}; "
             f"ward {res['machine']['ward_commit']}, Envoy {res['machine']['envoy']}; "
             f"{res['rate']} req/s through Envoy), {res['wall_s']:.0f} s.",
             "",
             "| fault | wrong allows | answers during | answers after | p99 during (ms) | "
             "recovery (ms) | revocation p99 ward 1 / 2 (ms) | RSS ward 1 / 2 before → after (MB) "
             "| other CPU | result |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for group, rows in res["groups"]:
        lines.append(f"| *{group}* | | | | | | | | | |")
        for r in rows:
            lines.append(
                f"| {r['fault']} | {'–' if r.get('skipped') else r['wrong_allows']} | "
                f"{r['during'] or '–'} | {r['after'] or '–'} | {ms(r['p99_during_ms'])} | "
                f"{recovery(r)} | {revocation(r)} | {mb(r['rss_before'])} → {mb(r['rss_after'])} "
                f"| {cpu(r)} | {verdict(r)} |")
    lines.append("")
    for group, rows in res["groups"]:
        for r in rows:
            notes = [n for n in r["notes"] if n]
            if notes or r.get("skipped"):
                lines.append(f"- **{r['fault']}** ({r['what']}): " + "; ".join(notes))
    lines.append("")
    for group, rows in res["groups"]:
        for r in rows:
            if r.get("per_minute"):
                lines += ["", f"{r['fault']}, per minute:", "",
                          "| minute | RSS ward 1 / 2 (MB) | p99 (ms) | answers | wrong allows |",
                          "|---|---|---|---|---|"]
                lines += [f"| {e['minute']} | {mb(e['rss_mb'])} | {ms(e['p99_ms'])} | "
                          f"{e['answers']} | {e['wrong_allows']} |" for e in r["per_minute"]]
                lines.append("")
    lines.append("*other CPU*: what processes outside the run used meanwhile, in % of one CPU "
                 "(of 2): latencies measured while it is high carry that noise.")
    lines.append("")
    lines.append("Targets: " + "; ".join(f"{d} {op} {lim}" for d, op, lim in TARGETS.values())
                 + f". **{'All met' if res['passed'] else 'NOT all met'}.**")
    return "\n".join(lines) + "\n"


def write(outdir: str, res: dict, md: str) -> None:
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump(res, f, indent=1, default=str)
    with open(os.path.join(outdir, "results.md"), "w") as f:
        f.write(md)


def publish(md: str) -> None:
    doc = os.path.join(ROOT, "docs", "reliability.md")
    with open(doc) as f:
        text = f.read()
    if BEGIN not in text or END not in text:
        log("docs/reliability.md has no results markers; not published")
        return
    pre, rest = text.split(BEGIN, 1)
    _, post = rest.split(END, 1)
    with open(doc, "w") as f:
        f.write(pre + BEGIN + "\n" + md + END + post)
    log("published to docs/reliability.md")
