"""chart.svg: the run at a glance, hand-written SVG (no dependency, no
script, readable on GitHub): ratio bars per phase with the target marked,
latency through Envoy, and a footer line for memory and the tail."""

from __future__ import annotations

import math


def nice_axis(top: float, ticks: int = 6) -> tuple[float, list[float]]:
    """A rounded axis maximum >= top and evenly spaced round ticks."""
    top = max(top, 1e-9)
    raw = top / ticks
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    n = math.ceil(top / step - 1e-9)
    return n * step, [round(i * step, 10) for i in range(n + 1)]


def esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_svg(res: dict) -> str:
    """Horizontal bars of ratios vs each phase's baseline, target marks, and
    a latency panel. Plain SVG, no scripts, readable on GitHub."""
    W = 940
    bar_x, bar_w = 360, 450
    row_h, gap = 22, 6
    out: list[str] = []
    y = 0

    def text(x, y, s, size=12, anchor="start", weight="normal", color="#222"):
        out.append(f'<text x="{x}" y="{y}" font-size="{size}" text-anchor="{anchor}" '
                   f'font-weight="{weight}" fill="{color}">{esc(s)}</text>')

    def panel(title, subtitle, rows, scale_max, ticks, target=None, unit_fmt=None):
        """rows: (label, value, annotation, color)."""
        nonlocal y
        y += 28
        text(10, y, title, 15, weight="bold")
        y += 16
        text(10, y, subtitle, 11, color="#555")
        y += 18
        top = y
        def width(v):
            if v is None or (isinstance(v, float) and math.isnan(v)):
                return 0.0
            return min(v, scale_max) / scale_max * bar_w

        for row in rows:
            label, value, note, color = row[:4]
            inner = row[4] if len(row) > 4 else None  # drawn over the bar (p50 over p99)
            text(bar_x - 8, y + row_h * 0.7, label, 12, anchor="end")
            w = width(value)
            out.append(f'<rect x="{bar_x}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" '
                       f'fill="{color}" rx="2"' + (' fill-opacity="0.45"' if inner is not None else "")
                       + '/>')
            if inner is not None:
                out.append(f'<rect x="{bar_x}" y="{y + 3}" width="{width(inner):.1f}" '
                           f'height="{row_h - 6}" fill="{color}" rx="2"/>')
            text(bar_x + w + 6, y + row_h * 0.7, note, 11, color="#333")
            y += row_h + gap
        bottom = y
        for t in ticks:
            x = bar_x + t / scale_max * bar_w
            out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" '
                       f'stroke="#ccc" stroke-width="1"/>')
            text(x, bottom + 12, unit_fmt(t) if unit_fmt else f"{t:g}", 10, anchor="middle",
                 color="#666")
        if target is not None:
            tv, tlabel = target
            x = bar_x + tv / scale_max * bar_w
            out.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{bottom}" '
                       f'stroke="#d62728" stroke-width="1.5" stroke-dasharray="4,3"/>')
            text(x + 3, top - 2, tlabel, 10, color="#d62728")
        y = bottom + 14

    base_c, ward_c, other_c = "#9e9e9e", "#1f77b4", "#ff7f0e"
    d = res.get("direct")
    if d:
        s = d["scenarios"]
        rows = []
        for name, sc in s.items():
            if sc["crosscheck"]:
                continue
            color = base_c if name.startswith("noop") else ward_c
            rows.append((sc["label"], sc["rps_ratio"],
                         f"{sc['rps_ratio']:.2f} × ({sc['median']['rps']:,.0f} Check/s)", color))
        panel("Direct gRPC Check, server on one core",
              "throughput relative to the do-nothing tonic server measured in the same run (higher is better)",
              rows, max([1.2] + [r[1] * 1.05 for r in rows]), [0, 0.25, 0.5, 0.75, 1.0],
              target=(0.90, "target ≥ 0.90 (cache hit)"))
        rows = []
        for name, sc in s.items():
            if sc["crosscheck"] or sc.get("cpu_ratio") is None:
                continue
            color = base_c if name.startswith("noop") else ward_c
            rows.append((sc["label"], sc["cpu_ratio"],
                         f"{sc['cpu_ratio']:.2f} × ({sc['median']['cpu_ms_per_1k']:.1f} ms CPU / 1k)",
                         color))
        mx, ticks = nice_axis(max([r[1] for r in rows] + [1.5]) * 1.1)
        panel("CPU per check", "server CPU seconds per check relative to the no-op server (lower is better)",
              rows, mx, ticks, target=(1.2, "target ≤ 1.2 (cache hit)"))
    e = res.get("envoy")
    if e:
        s = e["scenarios"]
        rows = []
        for name, sc in s.items():
            color = base_c if name == "envoy" else (ward_c if "ward" in name else other_c)
            rows.append((sc["label"], sc["vs_envoy"], f"{sc['vs_envoy']:.2f} × ({sc['rps']:,.0f} req/s)",
                         color))
        r = e["ratios"]
        panel("Through Envoy (1 worker) to nginx",
              f"req/s relative to Envoy alone; ward/no-op {r['ward_tcp_vs_noop']:.2f}, "
              f"ward/jwt_authn {r['ward_tcp_vs_jwt_authn']:.2f} (TCP)",
              rows, 1.2, [0, 0.25, 0.5, 0.75, 1.0])
        lat_rows = []
        top = max([sc["latency"]["p99_ms"] for sc in s.values()
                   if not math.isnan(sc["latency"]["p99_ms"])] + [0.5])
        mx, ticks = nice_axis(top * 1.3)
        for name, sc in s.items():
            lt = sc["latency"]
            if math.isnan(lt["p99_ms"]):  # measured for throughput only
                continue
            color = base_c if name == "envoy" else (ward_c if "ward" in name else other_c)
            lat_rows.append((sc["label"], lt["p99_ms"],
                             f"p50 {lt['p50_ms']:.2f} / p99 {lt['p99_ms']:.2f} ms"
                             + ("" if name == "envoy" else f" ({lt['added_p99_ms']:+.2f})"),
                             color, lt["p50_ms"]))
        panel(f"Latency through Envoy at a fixed {e['fixed_rate']:,.0f} req/s",
              "p50 (dark) and p99 (light) in ms; (±x) = p99 added over Envoy alone; "
              "target: ward adds ≤ 1 ms at p99",
              lat_rows, mx, ticks, unit_fmt=lambda t: f"{t:g}")
    # Footer: memory and tail in one line each.
    m, t = res.get("memory"), res.get("tail")
    y += 22
    if m:
        def short(n):
            return f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1000}k"

        steps = ", ".join(f"{short(st['entries'])}: {st['rss_kb'] / 1024:.0f} MB" for st in m["steps"])
        per = f" (≈{m['steps'][-1]['bytes_per_entry']:,.0f} B per entry)" if m["steps"] else ""
        text(10, y, f"Memory: idle RSS {m['idle_rss_kb'] / 1024:.1f} MB (target ≤ 20); "
                    f"with cached identities {steps}{per}", 12)
        y += 18
    if t:
        text(10, y, f"Tail ({t['duration_s']:.0f} s open-loop at {t['target_rps']:,} Check/s, 5% fresh "
                    f"tokens, entries expiring): p50 {t['p50_us'] / 1000:.3f} ms, "
                    f"p99.9 {t['p999_us'] / 1000:.3f} ms, p99.9/p50 {t['p999_over_p50']:.1f} (target ≤ 10),", 12)
        y += 16
        text(10, y, f"    max {t['max_us'] / 1000:.1f} ms, longest gap between completions "
                    f"{t['longest_gap_ms']:.1f} ms", 12)
        y += 18
    mi = res["machine"]
    fc = res.get("foreign_cpu", {})
    text(10, y + 6, f"{res['started']} · {mi['nproc']} × {mi['cpu_model']} · Linux {mi['kernel']} · "
                    f"ward {mi['ward_commit']} · {'quick' if res['quick'] else 'full'} run · other processes "
                    f"{fc.get('median', 0) * 100:.0f}% of a CPU (median)", 10, color="#777")
    y += 20
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{y}" '
            f'viewBox="0 0 {W} {y}" font-family="Helvetica, Arial, sans-serif">'
            f'<rect width="{W}" height="{y}" fill="white"/>')
    return head + "".join(out) + "</svg>\n"
