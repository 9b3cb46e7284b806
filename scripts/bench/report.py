"""results.md: a run's results as markdown tables (targets, then one table
per phase that ran), the text --publish puts into docs/benchmarks.md."""

from __future__ import annotations

import math

from bench.compare import render_comparison, render_module_comparison
from bench.settings import LOAD_CPU, MAX_FOREIGN, SERVER_CPU


def fmt(v, spec=".2f", unit=""):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:{spec}}{unit}"


def render_markdown(res: dict) -> str:
    mi = res["machine"]
    lines = [
        f"Taken {res['started']} ({'quick' if res['quick'] else 'full'} run, "
        f"{res['wall_s'] / 60:.1f} min) on {mi['nproc']} × {mi['cpu_model']}, "
        f"{mi['memory']}, Linux {mi['kernel']}, {mi['os']}; ward {mi['ward_commit']}, "
        f"{mi['rustc']}, Envoy {mi['envoy']}, h2load {mi['h2load']}, {mi['nginx']}. "
        f"Other processes used a median {res['foreign_cpu']['median'] * 100:.0f}% "
        f"(max {res['foreign_cpu']['max'] * 100:.0f}%) of a CPU during measurements.",
        "",
        "**Targets**",
        "",
        "| target | limit | measured | met |",
        "|---|---|---|---|",
    ]
    for t in res["targets"]:
        met = "–" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {t['target']} | {t['op']} {t['limit']:g} | {fmt(t['value'])} | {met} |")
    d = res.get("direct")
    if d:
        lines += ["", f"**Direct gRPC** (server pinned to CPU {SERVER_CPU}, 1 worker; load on CPU "
                  f"{LOAD_CPU}; {d['conns']} connections × {d['depth']} in flight; median of "
                  f"{d['reps']} interleaved runs of {d['warmup_s']:g} s warm-up + {d['duration_s']:g} s)",
                  "",
                  "| scenario | Check/s | × no-op | × lean no-op | p50 ms | p99 ms | p99.9 ms | CPU ms / 1k checks | × no-op CPU |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for name, s in d["scenarios"].items():
            m = s["median"]
            label = s["label"] + (" *(cross-check)*" if s["crosscheck"] else "")
            lines.append(
                f"| {label} | {m['rps']:,.0f} | {fmt(s['rps_ratio'])} | {fmt(s.get('rps_ratio_lean'))} | "
                f"{fmt(m.get('p50_us', float('nan')) / 1000, '.3f')} | "
                f"{fmt(m.get('p99_us', float('nan')) / 1000, '.3f')} | "
                f"{fmt(m.get('p999_us', float('nan')) / 1000, '.3f')} | "
                f"{fmt(m.get('cpu_ms_per_1k'), '.1f')} | {fmt(s.get('cpu_ratio'))} |")
        lines += render_comparison(d)
    e = res.get("envoy")
    if e:
        pin = e["pinning"]
        lines += ["", f"**Through Envoy** (Envoy 1 worker on CPU {pin['envoy']}, the authz server on "
                  f"CPU {pin['authz']}; "
                  f"h2load + nginx (1 worker) on CPU {LOAD_CPU}; h2load {e['conns']} connections × "
                  f"{e['depth']} streams; median of {e['reps']} runs; latency at a fixed "
                  f"{e['fixed_rate']:,.0f} req/s)",
                  "",
                  "| scenario | req/s | × Envoy alone | CPU Envoy / authz | p50 ms | p99 ms | added p50 ms | added p99 ms |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for name, s in e["scenarios"].items():
            lt = s["latency"]
            util = " / ".join(f"{s['util'][k] * 100:.0f}%" for k in ("envoy", "authz") if k in s["util"])
            if "module_thread" in s["util"]:
                util += f" ({s['util']['module_thread'] * 100:.1f}% runtime thread)"
            lines.append(f"| {s['label']} | {s['rps']:,.0f} | {fmt(s['vs_envoy'])} | {util} | "
                         f"{fmt(lt['p50_ms'], '.3f')} | {fmt(lt['p99_ms'], '.3f')} | "
                         f"{fmt(lt['added_p50_ms'], '+.3f')} | {fmt(lt['added_p99_ms'], '+.3f')} |")
        r = e["ratios"]
        lines += ["", f"Envoy+ward / Envoy+no-op: **{r['ward_tcp_vs_noop']:.2f}** (TCP), "
                  f"{r['ward_uds_vs_noop']:.2f} (Unix socket). "
                  f"Envoy+ward / Envoy+jwt_authn: **{r['ward_tcp_vs_jwt_authn']:.2f}** (TCP), "
                  f"{r['ward_uds_vs_jwt_authn']:.2f} (Unix socket). "
                  f"For scale: Envoy+no-op / Envoy+jwt_authn {r['noop_vs_jwt_authn']:.2f}; "
                  f"a no-op answering like ward costs {r['noop_shaped_vs_noop']:.2f} × the empty "
                  f"answer, and Envoy+ward / Envoy+no-op-shaped is {r['ward_tcp_vs_noop_shaped']:.2f}."]
        if "module_jwt_vs_jwt_authn" in r:
            lines += ["", f"ward inside Envoy (module), JWT hit: **{r['module_jwt_vs_jwt_authn']:.2f}** × "
                      f"Envoy+jwt_authn, **{r['module_jwt_vs_noop_module']:.2f}** × the do-nothing "
                      f"module, {r['module_jwt_vs_ward_tcp']:.2f} × Envoy+ward over gRPC (TCP); "
                      f"the do-nothing module itself is {r['noop_module_vs_envoy']:.2f} × Envoy alone; "
                      f"the do-nothing module making ward's calls into Envoy (ward-shaped) is "
                      f"{r.get('noop_module_shaped_vs_noop_module', float('nan')):.2f} × the plain one, "
                      f"and ward's module is **{r.get('module_jwt_vs_noop_module_shaped', float('nan')):.2f}** × "
                      f"the shaped one (what ward computes, apart from what Envoy does with its answer). "
                      f"Session hit {r['module_session_vs_jwt']:.2f} × and API key hit "
                      f"{r['module_apikey_vs_jwt']:.2f} × the JWT hit; a JWT miss (RS256, a new token "
                      f"per request) {r['module_miss_vs_jwt']:.2f} ×, a session miss (a Redis read "
                      f"per request) {r.get('module_session_miss_vs_jwt', float('nan')):.2f} ×. "
                      f"Added latency minus "
                      f"jwt_authn's: p50 {r['module_added_p50_over_jwt_authn_ms']:+.3f} ms, p99 "
                      f"{r['module_added_p99_over_jwt_authn_ms']:+.3f} ms (median of "
                      f"{e.get('lat_reps', 1)} latency runs). CPU in parentheses: the module's "
                      f"runtime thread, on Envoy's CPU."]
        lines += render_module_comparison(e)
    m = res.get("memory")
    if m:
        lines += ["", "**Memory** (ward RSS; distinct HS256 tokens, one cache entry each)", "",
                  "| cached identities | RSS MB | bytes / entry |", "|---:|---:|---:|",
                  f"| idle | {m['idle_rss_kb'] / 1024:.1f} | – |"]
        for s in m["steps"]:
            lines.append(f"| {s['entries']:,} | {s['rss_kb'] / 1024:.1f} | {s['bytes_per_entry']:,.0f} |")
    t = res.get("tail")
    if t:
        lines += ["", f"**Tail stability** ({t['duration_s']:.0f} s open-loop at "
                  f"{t['target_rps']:,} Check/s; 1 in {t['fresh_every']} requests with a fresh ES256 "
                  f"token; 1,000 hot tokens; cache.max_ttl {t['max_ttl']}"
                  + (f"; **other processes used {t['foreign_cpu'] * 100:.0f}% of a CPU meanwhile**"
                     if t.get("foreign_cpu", 0) > MAX_FOREIGN else "") + ")", "",
                  "| server | Check/s | p50 ms | p99 ms | p99.9 ms | p99.9 / p50 | max ms | longest gap ms | CPU |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
                  f"| ward | {t['rps']:,.0f} | {t['p50_us'] / 1000:.3f} | {t['p99_us'] / 1000:.3f} | "
                  f"{t['p999_us'] / 1000:.3f} | {t['p999_over_p50']:.1f} | {t['max_us'] / 1000:.1f} | "
                  f"{t['longest_gap_ms']:.1f} | {t['ward_cpu_util'] * 100:.0f}% |"]
        n = t.get("noop")
        if n:
            lines.append(
                f"| no-op, same load | {n['rps']:,.0f} | {n['p50_us'] / 1000:.3f} | "
                f"{n['p99_us'] / 1000:.3f} | {n['p999_us'] / 1000:.3f} | {n['p999_over_p50']:.1f} | "
                f"{n['max_us'] / 1000:.1f} | – | – |")
            lines += ["", f"ward's p99.9 is **{t['p999_vs_noop']:.2f} ×** the do-nothing server's under "
                      "the same open loop (no credential work at all: what the load generator, the VM "
                      "and the kernel add). The no-op's slowest request in each second (ms): "
                      + ", ".join(f"{v:.1f}" for v in n.get("per_second_max_ms", [])) + "."]
        fl = t.get("fresh_latency_us")
        if fl:
            lines += ["", f"Requests with a fresh token alone: p50 {fl['p50'] / 1000:.3f} ms, "
                      f"p99 {fl['p99'] / 1000:.3f} ms, max {fl['max'] / 1000:.1f} ms. "
                      "Slowest request in each second (ms): "
                      + ", ".join(f"{v:.1f}" for v in t.get("per_second_max_ms", [])) + "."]
    c = res.get("cores")
    if c:
        lines += ["", f"**Runtime workers** (ward pinned to one CPU, open loop at {c['rate']:,} "
                  f"Check/s, JWT cache hit; median of {c['reps']} interleaved runs)", "",
                  "| client connections | CPU us / check, 1 worker | 2 workers | 2 vs 1 |",
                  "|---:|---:|---:|---:|"]
        for conns in (1, 4):
            lines.append(f"| {conns} | {c[f'cpu_us_w1_c{conns}']:.2f} | "
                         f"{c[f'cpu_us_w2_c{conns}']:.2f} | {c['ratios'][f'conns_{conns}']:.3f} |")
    return "\n".join(lines) + "\n"
