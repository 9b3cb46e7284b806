"""Where a run's results go: bench-results/<timestamp>/ (results.json,
results.md, chart.svg) and the bench-results/latest link; with --publish,
docs/bench/latest.{svg,json} and the table between the markers in
docs/benchmarks.md; with --render, md and svg again from a results.json."""

from __future__ import annotations

import json
import os
import shutil

from bench.chart import render_svg
from bench.procs import log
from bench.report import render_markdown
from bench.settings import ROOT

BEGIN, END = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"


def write_renderings(outdir: str, md: str, svg: str) -> None:
    with open(os.path.join(outdir, "results.md"), "w") as f:
        f.write(md)
    with open(os.path.join(outdir, "chart.svg"), "w") as f:
        f.write(svg)


def render_again(results_json: str) -> None:
    """results.md and chart.svg next to an existing results.json."""
    with open(results_json) as f:
        res = json.load(f)
    out = os.path.dirname(os.path.abspath(results_json))
    write_renderings(out, render_markdown(res), render_svg(res))
    log(f"rendered {out}/results.md and chart.svg")


def write_run(outdir: str, tmp: str, res: dict, md: str, svg: str) -> None:
    """The run's folder, bench-results/latest pointing at it, its tmp/ gone."""
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    write_renderings(outdir, md, svg)
    latest = os.path.join(ROOT, "bench-results", "latest")
    try:
        if os.path.islink(latest) or os.path.exists(latest):
            os.remove(latest)
        os.symlink(os.path.basename(outdir), latest)
    except OSError:
        pass
    shutil.rmtree(tmp, ignore_errors=True)


def publish(res: dict, md: str, svg: str) -> None:
    os.makedirs(os.path.join(ROOT, "docs", "bench"), exist_ok=True)
    with open(os.path.join(ROOT, "docs", "bench", "latest.svg"), "w") as f:
        f.write(svg)
    with open(os.path.join(ROOT, "docs", "bench", "latest.json"), "w") as f:
        json.dump(res, f, indent=1)
    doc = os.path.join(ROOT, "docs", "benchmarks.md")
    if os.path.exists(doc):
        with open(doc) as f:
            text = f.read()
        if BEGIN in text and END in text:
            pre, rest = text.split(BEGIN, 1)
            _, post = rest.split(END, 1)
            with open(doc, "w") as f:
                f.write(pre + BEGIN + "\n" + md + END + post)
            log("published to docs/benchmarks.md and docs/bench/latest.svg")
            return
    log("docs/benchmarks.md has no results markers; wrote docs/bench/latest.svg only")
