"""The envoy phase: HTTP through a real Envoy (1 worker) to nginx, with no
auth, Envoy's own jwt_authn, ext_authz to the no-op or ward, or ward as a
dynamic module inside Envoy beside a do-nothing module; maximum throughput
with h2load (loadgen where every request carries a different token), then
latency at a fixed rate with loadgen."""

from __future__ import annotations

import json
import math
import os
import time

from bench.bed import Bed, Envoy, Nginx, Noop, Ward, module_config
from bench.compare import AFTER, BEFORE, build_order, compare_modules
from bench.measure import (CLK_TCK, Foreign, cpu_ticks, measure, median, ms, parse_h2load,
                           thread_ticks)
from bench.procs import log, run_tool
from bench.scenarios import EnvoyScenario, envoy_credential, envoy_scenarios, h2load_header
from bench.settings import (ENVOY_CONNS, ENVOY_DEPTH, LOAD_CPU, LOADGEN_BIN, MODULE_DIR,
                            NOOP_MODULE_DIR, SERVER_CPU)

# The module's runtime thread (envoy-module/src/filter.rs): store reads
# that miss the cache, JWKS fetches, invalidations.
MODULE_THREAD = "ward-module"
PATH = "/api/v1/items?limit=10"


class EnvoyStack:
    """Envoy (+ its authz server) for one scenario, nginx shared."""

    def __init__(self, bed: Bed, sc: EnvoyScenario, nginx: Nginx, baseline: bool = False):
        # `baseline`: ward's module is the baseline build (bed.baseline_module).
        self.authz = None
        self.nginx = nginx
        args = {"mode": sc.mode, "upstream_port": nginx.port}
        if sc.authz in ("noop", "noop_shaped"):
            self.authz = Noop(bed, bed.authz_cpu, shaped=sc.authz == "noop_shaped")
            args["authz_port"] = self.authz.grpc_port
        elif sc.authz == "ward":
            self.authz = Ward(bed, bed.authz_cpu, unix=sc.unix)
            if sc.unix:
                args["authz_unix"] = self.authz.unix_path
            else:
                args["authz_port"] = self.authz.grpc_port
        if sc.mode == "jwt_authn":
            args["jwks"] = bed.jwks
        env = None
        if sc.mode == "module":
            stored = sc.credential in ("session", "apikey", "session_miss")
            redis = bed.ensure_redis().url if stored else None
            args["module_config"] = module_config(redis)
            env = {"ENVOY_DYNAMIC_MODULES_SEARCH_PATH":
                   bed.baseline_module_dir if baseline else MODULE_DIR}
        elif sc.mode == "noop_module":
            env = {"ENVOY_DYNAMIC_MODULES_SEARCH_PATH": NOOP_MODULE_DIR}
            if sc.noop_config:
                args["module_config"] = sc.noop_config
            elif sc.shaped:
                args["module_config"] = "shaped"
        self.module = sc.mode == "module"
        try:
            self.envoy = Envoy(bed, SERVER_CPU, args, env=env)
        except Exception:
            if self.authz:
                self.authz.stop()
            raise

    def stop(self):
        self.envoy.stop()
        if self.authz:
            self.authz.stop()

    def procs(self) -> dict:
        """The processes whose CPU a run reports: Envoy and its authz server."""
        procs = {"envoy": self.envoy}
        if self.authz:
            procs["authz"] = self.authz
        return procs


def h2load_envoy(stack: EnvoyStack, header: str, duration: float, warmup: float) -> dict:
    argv = ["h2load", f"-c{ENVOY_CONNS}", f"-m{ENVOY_DEPTH}", f"-D{ms(duration)}",
            f"--warm-up-time={ms(warmup)}", "-H", header,
            f"http://127.0.0.1:{stack.envoy.http_port}{PATH}"]
    h = parse_h2load(run_tool(argv, LOAD_CPU, duration + warmup + 60, "h2load via Envoy"))
    if h["non2xx"] or h["failed"] or h["errored"] or h["2xx"] == 0:
        raise RuntimeError(f"requests through Envoy failed: {h}\n{stack.envoy.proc.tail()}")
    return h


def loadgen_max_envoy(bed: Bed, stack: EnvoyStack, cred: list[str], duration: float,
                      warmup: float) -> dict:
    """Maximum throughput with loadgen (closed loop), for a pool of tokens
    each sent once; the same shape as h2load's: conns x streams."""
    out_path = os.path.join(bed.tmp, bed.name("loadgen-max") + ".json")
    run_tool([LOADGEN_BIN, "run", "--addr", f"127.0.0.1:{stack.envoy.http_port}",
              "--http-path", PATH, "--conns", str(ENVOY_CONNS), "--depth", str(ENVOY_DEPTH),
              "--warmup", str(warmup), "--duration", str(duration), "--out", out_path] + cred,
             LOAD_CPU, duration + warmup + 60, "loadgen via Envoy")
    with open(out_path) as f:
        rep = json.load(f)
    m = rep["measured"]
    if m["deny"] or m["grpc_error"] or m["transport_error"] or m["allow"] == 0:
        raise RuntimeError(f"requests through Envoy failed: {m}\n{stack.envoy.proc.tail()}")
    return {"rps": rep["rps"], "2xx": rep["all"]["allow"]}


def max_through_envoy(bed: Bed, stack: EnvoyStack, cred: list[str], duration: float,
                      warmup: float) -> dict:
    """Maximum req/s through Envoy, with the CPU each process (and the
    module's runtime thread) used meanwhile."""
    before = stack.authz.decisions() if isinstance(stack.authz, Ward) else None
    cpu0 = {n: cpu_ticks(p.pid) for n, p in stack.procs().items()}
    thread0 = thread_ticks(stack.envoy.pid, MODULE_THREAD) if stack.module else 0
    foreign = Foreign([p.pid for p in stack.procs().values()] + [stack.nginx.proc.pid])
    t0 = time.monotonic()
    if "--once" in cred:
        h = loadgen_max_envoy(bed, stack, cred, duration, warmup)
    else:
        h = h2load_envoy(stack, h2load_header(cred), duration, warmup)
    t1 = time.monotonic()
    util = {n: (cpu_ticks(p.pid) - cpu0[n]) / CLK_TCK / (t1 - t0) for n, p in stack.procs().items()}
    if stack.module:
        util["module_thread"] = ((thread_ticks(stack.envoy.pid, MODULE_THREAD) - thread0)
                                 / CLK_TCK / (t1 - t0))
    if before is not None:
        allow, deny = stack.authz.decisions()
        if deny - before[1] > 0 or allow - before[0] < h["2xx"]:
            denies = {k: v for k, v in stack.authz.metrics().items()
                      if k.startswith("ward_check_total{") and 'decision="deny"' in k and v}
            raise RuntimeError(f"ward denied or missed checks: allow {allow - before[0]}, "
                               f"deny {deny - before[1]}, 2xx {h['2xx']}; denies: {denies}")
    h["util"] = util
    h["foreign_cpu"] = foreign.done()
    return h


def latency_through_envoy(bed: Bed, stack: EnvoyStack, cred: list[str], rate: float,
                          duration: float, warmup: float) -> dict:
    """p50/p99 (ms) at a fixed rate through Envoy, with loadgen's open-loop
    HTTP mode (h2load --rps sends in bursts every ~10 ms, which would be
    measured as latency)."""
    out_path = os.path.join(bed.tmp, bed.name("latency") + ".json")
    before = stack.authz.decisions() if isinstance(stack.authz, Ward) else None
    foreign = Foreign([p.pid for p in stack.procs().values()] + [stack.nginx.proc.pid])
    run_tool([LOADGEN_BIN, "run", "--addr", f"127.0.0.1:{stack.envoy.http_port}",
              "--http-path", PATH, "--conns", str(ENVOY_CONNS),
              "--depth", str(ENVOY_DEPTH), "--warmup", str(warmup), "--duration", str(duration),
              "--rps", str(rate), "--out", out_path] + cred,
             LOAD_CPU, duration + warmup + 60, "loadgen via Envoy")
    foreign_cpu = foreign.done()
    with open(out_path) as f:
        rep = json.load(f)
    m = rep["measured"]
    if m["deny"] or m["grpc_error"] or m["transport_error"] or m["allow"] == 0:
        raise RuntimeError(f"requests through Envoy failed: {m}\n{stack.envoy.proc.tail()}")
    if before is not None:
        allow, deny = stack.authz.decisions()
        if deny - before[1] > 0 or allow - before[0] < rep["all"]["allow"]:
            raise RuntimeError(f"ward denied or missed checks: allow {allow - before[0]}, "
                               f"deny {deny - before[1]}, loadgen {rep['all']}")
    lat = rep["latency_us"]
    return {"p50_ms": lat["p50"] / 1000, "p99_ms": lat["p99"] / 1000,
            "p999_ms": lat["p999"] / 1000, "max_ms": lat["max"] / 1000, "rps": rep["rps"],
            "foreign_cpu": foreign_cpu}


def run_fresh(bed: Bed, sc: EnvoyScenario, nginx: Nginx, body, baseline: bool = False) -> dict:
    """`body(stack)` on a fresh stack for `sc` (with the baseline module
    if `baseline`), retried while the machine was busy (measure)."""

    def once():
        stack = EnvoyStack(bed, sc, nginx, baseline=baseline)
        try:
            return body(stack)
        finally:
            stack.stop()

    return measure(bed, sc.name + (" (before)" if baseline else ""), once)


def fixed_rate(maxes: dict[str, float], lat_scenarios: list[EnvoyScenario]) -> tuple[float, float]:
    """Half of Envoy alone's max, as asked, unless a scenario saturates
    below that; then half of the slowest one's max, so no scenario is
    measured while queueing. Returns (rate, half of Envoy alone's max)."""
    half_alone = maxes["envoy"] / 2
    rate = min(half_alone, min(maxes[sc.name] for sc in lat_scenarios) / 2)
    return max(100.0, math.floor(rate / 100) * 100), half_alone


def latency_scenarios(scenarios: list[EnvoyScenario]) -> list[EnvoyScenario]:
    """The miss rows are measured for throughput only (see EnvoyScenario)."""
    return [sc for sc in scenarios if not sc.credential.endswith("_miss")]


NOT_MEASURED = {k: float("nan") for k in ("p50_ms", "p99_ms", "p999_ms", "max_ms", "rps")}


def phase_envoy(bed: Bed) -> dict:
    scenarios = envoy_scenarios(bed)
    lat_scenarios = latency_scenarios(scenarios)
    q = bed.quick
    warmup, duration = (0.5, 2.0) if q else (1.0, 4.0)
    reps = 2 if q else 3
    lat_duration = 2.5 if q else 5.0
    # The latency targets are read from a median of 5 interleaved runs.
    lat_reps = 1 if q else 5
    bed.jwks = run_tool([LOADGEN_BIN, "jwks", "--alg", "RS256", "--kid", "bench-rs256"],
                        None, 30, "jwks").strip()
    creds = {sc.name: envoy_credential(bed, sc.credential, warmup + duration)
             for sc in scenarios}
    log(f"envoy: {len(scenarios)} scenarios x {reps} repetitions, h2load "
        f"{ENVOY_CONNS} conns x {ENVOY_DEPTH} streams, {warmup}s + {duration}s; "
        f"Envoy on CPU {SERVER_CPU}, authz server on CPU {bed.authz_cpu}, "
        f"h2load + nginx on CPU {LOAD_CPU}")
    nginx = Nginx(bed, LOAD_CPU)
    runs: dict[str, list[dict]] = {sc.name: [] for sc in scenarios}
    lats: dict[str, list[dict]] = {sc.name: [] for sc in scenarios}
    # The baseline module's runs of the module scenarios (none without one).
    before: dict[str, list[dict]] = {sc.name: [] for sc in scenarios
                                     if bed.baseline_module and sc.mode == "module"}
    try:
        for rep in range(reps):
            for sc in scenarios:
                for build in build_order(rep) if sc.name in before else (AFTER,):
                    is_base = build == BEFORE
                    h = run_fresh(bed, sc, nginx, lambda stack: max_through_envoy(
                        bed, stack, creds[sc.name], duration, warmup), baseline=is_base)
                    (before if is_base else runs)[sc.name].append(h)
                    what = sc.name + (f" ({build})" if sc.name in before else "")
                    log(f"  [{rep + 1}/{reps}] {what:35s} {h['rps']:8.0f} req/s  CPU "
                        + " ".join(f"{k} {v * 100:.0f}%" for k, v in h["util"].items())
                        + (f"  (other processes: {h['foreign_cpu'] * 100:.0f}% CPU)"
                           if h["foreign_cpu"] > 0.05 else ""))
        maxes = {n: median([r["rps"] for r in rs]) for n, rs in runs.items()}
        rate, half_alone = fixed_rate(maxes, lat_scenarios)
        log(f"  latency at a fixed {rate:.0f} req/s (Envoy alone max {maxes['envoy']:.0f}), "
            f"{lat_reps} x {lat_duration}s per scenario")
        for rep in range(lat_reps):
            for sc in lat_scenarios:
                lt = run_fresh(bed, sc, nginx, lambda stack: latency_through_envoy(
                    bed, stack, creds[sc.name], rate, lat_duration, 1.0))
                lats[sc.name].append(lt)
                log(f"  [{rep + 1}/{lat_reps}] {sc.name:26s} p50 {lt['p50_ms']:.3f} ms  "
                    f"p99 {lt['p99_ms']:.3f} ms  ({lt['rps']:.0f} req/s)")
    finally:
        nginx.stop()
    out = {"conns": ENVOY_CONNS, "depth": ENVOY_DEPTH, "reps": reps, "lat_reps": lat_reps,
           "warmup_s": warmup, "duration_s": duration, "fixed_rate": rate,
           "half_envoy_alone": half_alone,
           "pinning": {"envoy": SERVER_CPU, "authz": bed.authz_cpu, "nginx": LOAD_CPU,
                       "h2load": LOAD_CPU},
           "scenarios": {sc.name: summary(sc, runs[sc.name], lats[sc.name])
                         for sc in scenarios}}
    out["ratios"] = ratios(out["scenarios"], runs)
    if before:
        out["baseline_module"] = compare_modules(
            bed.baseline_module, {sc.name: sc.label for sc in scenarios}, runs, before)
    return out


def summary(sc: EnvoyScenario, rs: list[dict], lts: list[dict]) -> dict:
    """One scenario's medians: req/s, CPU, latency at the fixed rate."""
    return {
        "label": sc.label,
        "rps": median([r["rps"] for r in rs]),
        "rps_runs": [r["rps"] for r in rs],
        "foreign_cpu": median([r["foreign_cpu"] for r in rs]),
        "util": {k: median([r["util"][k] for r in rs]) for k in rs[0]["util"]},
        "latency": ({k: median([x[k] for x in lts])
                     for k in ("p50_ms", "p99_ms", "p999_ms", "max_ms", "rps")}
                    if lts else dict(NOT_MEASURED)),
    }


def ratios(s: dict, runs: dict[str, list[dict]]) -> dict:
    """Each scenario's req/s over Envoy alone's, and the ratios the
    targets read, each the median of the per-repetition ratios; the
    latency each scenario adds over Envoy alone."""

    def rep_ratio(a, b):
        if a not in runs or b not in runs:  # not run (--scenarios)
            return float("nan")
        return median([x["rps"] / y["rps"] for x, y in zip(runs[a], runs[b])])

    for name in s:
        s[name]["vs_envoy"] = rep_ratio(name, "envoy")
    base = s["envoy"]["latency"]
    for sc in s.values():
        lt = sc["latency"]
        lt["added_p50_ms"] = lt["p50_ms"] - base["p50_ms"]
        lt["added_p99_ms"] = lt["p99_ms"] - base["p99_ms"]
    missing = {"latency": dict(NOT_MEASURED, added_p50_ms=float("nan"),
                               added_p99_ms=float("nan"))}
    module = s.get("envoy_ward_module_jwt", missing)["latency"]
    jwt_authn = s.get("envoy_jwt_authn", missing)["latency"]
    return {
        "ward_tcp_vs_noop": rep_ratio("envoy_ward_tcp", "envoy_noop"),
        "ward_tcp_vs_jwt_authn": rep_ratio("envoy_ward_tcp", "envoy_jwt_authn"),
        "ward_uds_vs_noop": rep_ratio("envoy_ward_uds", "envoy_noop"),
        "ward_uds_vs_jwt_authn": rep_ratio("envoy_ward_uds", "envoy_jwt_authn"),
        "ward_tcp_vs_noop_shaped": rep_ratio("envoy_ward_tcp", "envoy_noop_shaped"),
        "noop_shaped_vs_noop": rep_ratio("envoy_noop_shaped", "envoy_noop"),
        "noop_vs_jwt_authn": rep_ratio("envoy_noop", "envoy_jwt_authn"),
        "module_jwt_vs_jwt_authn": rep_ratio("envoy_ward_module_jwt", "envoy_jwt_authn"),
        "module_jwt_vs_noop_module": rep_ratio("envoy_ward_module_jwt", "envoy_noop_module"),
        "module_jwt_vs_ward_tcp": rep_ratio("envoy_ward_module_jwt", "envoy_ward_tcp"),
        "module_session_vs_jwt": rep_ratio("envoy_ward_module_session", "envoy_ward_module_jwt"),
        "module_apikey_vs_jwt": rep_ratio("envoy_ward_module_apikey", "envoy_ward_module_jwt"),
        "module_miss_vs_jwt": rep_ratio("envoy_ward_module_jwt_miss", "envoy_ward_module_jwt"),
        "module_session_miss_vs_jwt": rep_ratio("envoy_ward_module_session_miss",
                                                "envoy_ward_module_jwt"),
        "noop_module_vs_envoy": rep_ratio("envoy_noop_module", "envoy"),
        "noop_module_shaped_vs_noop_module": rep_ratio("envoy_noop_module_shaped",
                                                       "envoy_noop_module"),
        "module_jwt_vs_noop_module_shaped": rep_ratio("envoy_ward_module_jwt",
                                                      "envoy_noop_module_shaped"),
        "module_added_p50_over_jwt_authn_ms": module["added_p50_ms"] - jwt_authn["added_p50_ms"],
        "module_added_p99_over_jwt_authn_ms": module["added_p99_ms"] - jwt_authn["added_p99_ms"],
    }
