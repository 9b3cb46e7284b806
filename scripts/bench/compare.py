"""Two ward builds in one run (`--baseline-bin`, `WARD_BASELINE_BIN`): the
direct phase runs each ward scenario against the build under test ("after",
`--ward-bin`, by default this checkout's) and against the baseline
("before"), one right after the other in every repetition, so that the
machine's noise falls on both alike. The order alternates between
repetitions (after, before; then before, after; ...), so that a drift
during the run, or whichever of the two goes first, favours neither.

This module decides that order, names the builds, reduces the runs to
ratios (after / before per repetition, then the median, like every other
ratio of the bed) and renders them as a table under the direct one. Without
a baseline none of it runs, and results.json, results.md and chart.svg are
what they were.

The envoy phase does the same for ward's Envoy module (`--baseline-module`,
`WARD_BASELINE_MODULE`): each module scenario also runs with the baseline
build of `libward_envoy.so`, alternating likewise (`compare_modules`); the
latency runs use the build under test only."""

from __future__ import annotations

import hashlib
import os

from bench.measure import median

AFTER, BEFORE = "after", "before"


def build_order(rep: int) -> tuple[str, str]:
    """Which build a ward scenario runs against first in repetition `rep`."""
    return (AFTER, BEFORE) if rep % 2 == 0 else (BEFORE, AFTER)


def build_info(path: str) -> dict:
    """A binary as the report names it: its path and a digest of its bytes
    (two builds of one commit have the same digest only if reproducible,
    but two different ones never share it)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return {"path": os.path.abspath(path), "sha256": h.hexdigest()[:12]}


def paired(a: list[dict], b: list[dict], key: str):
    """Median of a[i][key] / b[i][key] over the repetitions both have."""
    vals = [x[key] / y[key] for x, y in zip(a, b) if x.get(key) and y.get(key)]
    return median(vals) if vals else None


def compare_builds(after_bin: str, before_bin: str, labels: dict[str, str],
                   runs: dict[str, list[dict]], before: dict[str, list[dict]],
                   ref_of: dict[str, str]) -> dict:
    """results.json's `direct.baseline`: per ward scenario, the baseline's
    medians and runs, its ratio to the no-op (as the scenario's own
    `rps_ratio`, from the same repetitions' no-op runs), and after / before
    for Check/s and CPU per check. `runs` holds every scenario's runs (the
    build under test and the no-ops), `before` the baseline's, `ref_of` the
    no-op each scenario is compared with."""
    out = {AFTER: build_info(after_bin), BEFORE: build_info(before_bin), "scenarios": {}}
    for name, rs in before.items():
        ref = runs[ref_of[name]]
        out["scenarios"][name] = {
            "label": labels[name],
            "median": {k: median([r.get(k) for r in rs]) for k in rs[0]
                       if isinstance(rs[0][k], (int, float))},
            "runs": rs,
            "rps_ratio": paired(rs, ref, "rps"),
            "cpu_ratio": paired(rs, ref, "cpu_ms_per_1k"),
            "after_over_before": paired(runs[name], rs, "rps"),
            "cpu_after_over_before": paired(runs[name], rs, "cpu_ms_per_1k"),
        }
    return out


def compare_modules(before_module: str, labels: dict[str, str], runs: dict[str, list[dict]],
                    before: dict[str, list[dict]]) -> dict:
    """results.json's `envoy.baseline_module`: per module scenario, the
    baseline's req/s, after / before, and both builds' ratios to
    `jwt_authn` and to the do-nothing module from the same repetitions.
    `runs` holds every scenario's runs with the build under test, `before`
    the baseline module's."""
    from bench.settings import MODULE_DIR, module_file

    out = {AFTER: build_info(module_file(MODULE_DIR)), BEFORE: build_info(module_file(before_module)),
           "scenarios": {}}
    for name, rs in before.items():
        out["scenarios"][name] = {
            "label": labels[name],
            "rps_after": median([r["rps"] for r in runs[name]]),
            "rps_before": median([r["rps"] for r in rs]),
            "rps_runs_before": [r["rps"] for r in rs],
            "after_over_before": paired(runs[name], rs, "rps"),
            "cpu_after_over_before": paired(cpu_per_request(runs[name]), cpu_per_request(rs), "us"),
            "after_vs_jwt_authn": paired(runs[name], runs["envoy_jwt_authn"], "rps"),
            "before_vs_jwt_authn": paired(rs, runs["envoy_jwt_authn"], "rps"),
            "after_vs_noop_module": paired(runs[name], runs["envoy_noop_module"], "rps"),
            "before_vs_noop_module": paired(rs, runs["envoy_noop_module"], "rps"),
        }
    return out


def cpu_per_request(rs: list[dict]) -> list[dict]:
    """Envoy's CPU per request (µs) of each run: steadier than req/s on a
    shared machine (see docs/benchmarks.md)."""
    return [{"us": r["util"]["envoy"] / r["rps"] * 1e6} for r in rs]


def intro(what: str, b: dict, reps: int) -> str:
    """The sentence above an after / before table: `what` (bold title and
    how the baseline ran), then how the ratios are taken and the builds."""
    return (f"{what}, alternating with the build under test in every repetition; ratios per "
            f"repetition, median of {reps}. After: `{b[AFTER]['path']}` (sha256 "
            f"{b[AFTER]['sha256']}); before: `{b[BEFORE]['path']}` (sha256 {b[BEFORE]['sha256']}))")


def render_module_comparison(e: dict) -> list[str]:
    """Markdown lines: the after / before table of an envoy phase that had
    a baseline module (none when it had not)."""
    b = e.get("baseline_module")
    if not b:
        return []

    def f(v):
        return "–" if v is None or v != v else f"{v:.2f}"

    lines = ["", intro("**Module after / before** (two builds of ward's Envoy module in the same "
                       "run: each module scenario above also ran with the baseline", b, e["reps"]),
             "",
             "| scenario | after req/s | before req/s | **after / before** | after × jwt_authn | "
             "before × jwt_authn | after × do-nothing module | before × do-nothing module | "
             "after / before Envoy CPU per request |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in b["scenarios"].values():
        lines.append(f"| {s['label']} | {s['rps_after']:,.0f} | {s['rps_before']:,.0f} | "
                     f"**{f(s['after_over_before'])}** | {f(s['after_vs_jwt_authn'])} | "
                     f"{f(s['before_vs_jwt_authn'])} | {f(s['after_vs_noop_module'])} | "
                     f"{f(s['before_vs_noop_module'])} | {f(s.get('cpu_after_over_before'))} |")
    return lines


def render_comparison(d: dict) -> list[str]:
    """Markdown lines: the after / before table of a direct phase that had a
    baseline (none when it had not)."""
    b = d.get("baseline")
    if not b:
        return []

    def f(v, spec=".2f"):
        return "–" if v is None or v != v else f"{v:{spec}}"

    lines = ["", intro("**After / before** (two ward builds in the same run: each ward scenario "
                       "above also ran against the baseline", b, d["reps"]),
             "",
             "| scenario | after Check/s | before Check/s | **after / before** | after × no-op | "
             "before × no-op | after / before CPU per check |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, s in b["scenarios"].items():
        after = d["scenarios"][name]
        lines.append(f"| {s['label']} | {after['median']['rps']:,.0f} | {s['median']['rps']:,.0f} | "
                     f"**{f(s['after_over_before'])}** | {f(after['rps_ratio'])} | "
                     f"{f(s['rps_ratio'])} | {f(s['cpu_after_over_before'])} |")
    return lines
