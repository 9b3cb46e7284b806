"""What is measured, as data: the direct scenarios (a server to start and
the credentials loadgen sends it) and the scenarios through Envoy (an auth
filter and the server behind it), with the helpers that make their
credentials. The phases, the ratios, the table and the chart pick a new
entry up by themselves."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Callable, Optional

from bench.bed import Bed
from bench.credentials import lines_file, one_token, random_base62, token_pool


# ------------------------------------------------------------------ direct

@dataclass
class DirectScenario:
    name: str
    label: str
    server: str                       # "noop" | "noop_shaped" | "noop_lean" | "ward"
    tool: str = "loadgen"             # "loadgen" | "h2load"
    tokens: Optional[Callable[[Bed], list[str]]] = None  # extra loadgen args
    expect_allow: bool = True
    ward_extra: dict = field(default_factory=dict)
    setup: Optional[Callable[[Bed], dict]] = None  # starts helpers, returns more ward config
    method: Optional[str] = None      # ward's ward_check_total method label that must allow
    crosscheck: bool = False          # h2load twin, shown apart from the ratios


# ward config for the identity-token row: every check's policy sends one.
IDENTITY_TOKEN_EXTRA = {
    "identity_token": {"issuer": "http://ward.bench:9090"},
    "policies": {"backend": {"identity_token": {"audience": "bench"}}},
    "default_policy": "backend",
}


def hot_token_args(bed: Bed) -> list[str]:
    return ["--tokens", one_token(bed)]


def miss_args(alg: str, rate_guess: int):
    """A pool of distinct tokens, each sent once: every check is a miss
    (ward restarts per run, so the pool is reused across repetitions)."""

    def args(bed: Bed) -> list[str]:
        d = bed.direct_window
        count = int(math.ceil(rate_guess * d * 1.15 / 1000.0) * 1000)
        return ["--tokens", token_pool(bed, alg, count, 7 * 86400, "miss-"), "--once"]

    return args


def redis_store(bed: Bed) -> dict:
    """ward config for the scenarios that read sessions and API keys."""
    return {"store": {"redis": {"url": bed.ensure_redis().url}}}


def session_hit_args(bed: Bed) -> list[str]:
    r = bed.ensure_redis()
    r.ensure_sessions(1)
    return ["--tokens", lines_file(bed, "session-hot.txt", r.sessions[:1]),
            "--header-name", "cookie", "--value-prefix", "session_id="]


def apikey_hit_args(bed: Bed) -> list[str]:
    key = bed.ensure_redis().ensure_api_key()
    return ["--tokens", lines_file(bed, "apikey-hot.txt", [key]),
            "--header-name", "x-api-key", "--value-prefix", ""]


def session_miss_args(rate_guess: int):
    """A different stored session per request, each sent once (ward
    restarts per run, so its cache starts empty and the ids are reused)."""

    def args(bed: Bed) -> list[str]:
        count = int(math.ceil(rate_guess * bed.direct_window * 1.15 / 1000.0) * 1000)
        r = bed.ensure_redis()
        r.ensure_sessions(count + 1)
        return ["--tokens", lines_file(bed, f"session-miss-{count}.txt", r.sessions[1:count + 1]),
                "--once", "--header-name", "cookie", "--value-prefix", "session_id="]

    return args


def introspection(bed: Bed) -> dict:
    """ward config for the opaque-token rows: one provider, the bed's
    loopback responder; the global caps out of the way of the cold row."""
    return {"introspection": {
        "max_concurrency": 4096, "max_rate": 100000,
        "providers": [{"endpoint": bed.ensure_introspection(), "client_id": "bench",
                       "client_secret": {"value": "bench-secret"}, "timeout": "1s",
                       "prefix": "opq_", "max_ttl": "1h"}]}}


def opaque_hit_args(bed: Bed) -> list[str]:
    return ["--tokens", lines_file(bed, "opaque-hot.txt", ["opq_" + random_base62(40)])]


def opaque_miss_args(rate_guess: int):
    """A different opaque token per request, each sent once: every check
    is a call to the responder."""

    def args(bed: Bed) -> list[str]:
        count = int(math.ceil(rate_guess * bed.direct_window * 1.15 / 1000.0) * 1000)
        path = os.path.join(bed.cache, f"opaque-miss-{count}.txt")
        if not os.path.exists(path):
            with open(path, "w") as f:
                f.writelines("opq_" + random_base62(40) + "\n" for _ in range(count))
        return ["--tokens", path, "--once"]

    return args


def ten_thousand_routes() -> list[dict]:
    """10,000 routes none of which matches the bench request (exact paths,
    segment prefixes and globs, a third each), then a catch-all: the
    matcher's worst case is to find nothing until the last route."""
    routes: list[dict] = []
    for i in range(9999):
        kind = i % 3
        if kind == 0:
            routes.append({"exact": f"/svc{i}/health", "policy": "public"})
        elif kind == 1:
            routes.append({"prefix": f"/svc{i}", "scopes": {"all_of": ["x"]}})
        else:
            routes.append({"glob": f"/g{i}/*/items", "policy": "public"})
    routes.append({"name": "catch-all", "prefix": "/", "policy": "required"})
    return routes


DIRECT_SCENARIOS = [
    DirectScenario("noop", "no-op server (baseline)", "noop", tokens=hot_token_args),
    DirectScenario("noop_shaped", "no-op server, ward-shaped answer", "noop_shaped",
                   tokens=hot_token_args),
    DirectScenario("noop_lean", "no-op server, ward's request decoding", "noop_lean",
                   tokens=hot_token_args),
    DirectScenario("ward_hit", "ward, JWT RS256, cache hit", "ward", tokens=hot_token_args),
    DirectScenario("ward_hit_10k_routes", "ward, JWT cache hit, 10k routes", "ward",
                   tokens=hot_token_args, ward_extra={"routes": ten_thousand_routes()}),
    # Issue 18: the same hit on a policy that sends a signed identity token
    # (a generated ES256 key): the token is kept with the identity, so a
    # hit only copies it into the answer.
    DirectScenario("ward_hit_identity_token", "ward, JWT cache hit with identity token", "ward",
                   tokens=hot_token_args, ward_extra=IDENTITY_TOKEN_EXTRA),
    # Traces configured (an OTLP endpoint) but no check sampled: what the
    # trace-context plumbing costs a hit. (Tracing off is `ward_hit`; its
    # cost against a build without tracing code is in docs/operations.md.)
    DirectScenario("ward_hit_traces_unsampled", "ward, JWT cache hit, traces on, 0% sampled",
                   "ward", tokens=hot_token_args,
                   ward_extra={"tracing": {"otlp": {"endpoint": "http://127.0.0.1:9"},
                                           "sampling_ratio": 0.0}}),
    DirectScenario("ward_miss_rs256", "ward, JWT RS256, cache miss", "ward",
                   tokens=miss_args("RS256", 20000)),
    DirectScenario("ward_miss_es256", "ward, JWT ES256, cache miss", "ward",
                   tokens=miss_args("ES256", 14000)),
    # Sessions and API keys in a throwaway Redis (on the load CPU).
    DirectScenario("ward_session_hit", "ward, session, cache hit", "ward",
                   tokens=session_hit_args, setup=redis_store, method="session"),
    DirectScenario("ward_apikey_hit", "ward, API key, cache hit", "ward",
                   tokens=apikey_hit_args, setup=redis_store, method="apikey"),
    DirectScenario("ward_session_miss", "ward, session, all miss (Redis)", "ward",
                   tokens=session_miss_args(60000), setup=redis_store, method="session"),
    # The same with the default store cache (100k entries), which a run
    # overfills: every miss past that also admits or evicts an entry.
    DirectScenario("ward_session_miss_full", "ward, session, all miss, store cache full",
                   "ward", tokens=session_miss_args(60000), method="session",
                   setup=lambda bed: {**redis_store(bed),
                                      "cache": {"max_entries": 200000, "max_ttl": "300s"}}),
    # Issue 20: opaque tokens (RFC 7662 introspection) against a loopback
    # responder. The hit never calls it (one call per run): compare with
    # ward_hit. The cold row calls it for every check: its rate is the
    # responder's (Python, on the load CPU); read its p50/p99.
    DirectScenario("ward_opaque_hit", "ward, opaque token, cache hit", "ward",
                   tokens=opaque_hit_args, setup=introspection, method="opaque"),
    DirectScenario("ward_opaque_miss", "ward, opaque token, all miss (loopback provider)",
                   "ward", tokens=opaque_miss_args(4000), setup=introspection,
                   method="opaque"),
    # The same two with h2load, to show loadgen is not the bottleneck.
    DirectScenario("h2load_noop", "no-op server, h2load", "noop", tool="h2load",
                   tokens=hot_token_args, crosscheck=True),
    DirectScenario("h2load_ward_hit", "ward cache hit, h2load", "ward", tool="h2load",
                   tokens=hot_token_args, crosscheck=True),
]


def direct_scenarios(bed: Bed) -> list[DirectScenario]:
    """All scenarios, or those `--scenarios` names (the baseline always).
    Names of the envoy phase's scenarios are left to it (envoy_scenarios)."""
    known = {sc.name for sc in DIRECT_SCENARIOS}
    named = [n for n in bed.scenarios if n not in ENVOY_NAMES]
    if not named:
        return DIRECT_SCENARIOS
    unknown = sorted(set(named) - known)
    if unknown:
        raise SystemExit(f"--scenarios: unknown {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(known | ENVOY_NAMES))})")
    keep = set(named) | {"noop"} | ({"h2load_noop"} if any(
        n.startswith("h2load_") for n in named) else set())
    return [sc for sc in DIRECT_SCENARIOS if sc.name in keep]


# ------------------------------------------------------------------ envoy


def envoy_credential(bed: Bed, credential: str, window: float) -> list[str]:
    """loadgen's arguments for what each request through Envoy carries
    (see EnvoyScenario.credential); `window`: the seconds of one run, to
    size a pool of tokens each sent once."""
    if credential == "jwt":
        return hot_token_args(bed)
    if credential == "session":
        return session_hit_args(bed)
    if credential == "apikey":
        return apikey_hit_args(bed)
    # 15k/s: above a miss's rate through one Envoy worker on this machine
    # kind; a pool that runs out only ends the window early.
    count = int(math.ceil(15000 * window * 1.15 / 1000.0) * 1000)
    if credential == "jwt_miss":
        return ["--tokens", token_pool(bed, "RS256", count, 7 * 86400, "miss-"), "--once"]
    if credential == "session_miss":
        r = bed.ensure_redis()
        r.ensure_sessions(count + 1)  # the first is the hot one
        return ["--tokens", lines_file(bed, f"envoy-session-miss-{count}.txt",
                                       r.sessions[1:count + 1]),
                "--once", "--header-name", "cookie", "--value-prefix", "session_id="]
    raise ValueError(f"unknown credential {credential}")


def h2load_header(loadgen_args: list[str]) -> str:
    """The one header h2load sends for loadgen's arguments: the pool's
    first line in loadgen's header, with its prefix."""
    assert "--once" not in loadgen_args, "h2load sends one value: no pool of single-use tokens"
    opts = dict(zip(loadgen_args[::2], loadgen_args[1::2]))
    with open(opts["--tokens"]) as f:
        line = f.readline().strip()
    name = opts.get("--header-name", "authorization")
    return f"{name}: {opts.get('--value-prefix', 'Bearer ')}{line}"


@dataclass
class EnvoyScenario:
    name: str
    label: str
    mode: str                    # "none" | "jwt_authn" | "ext_authz" | "module" | "noop_module"
    authz: Optional[str] = None  # "noop" | "noop_shaped" | "ward"
    unix: bool = False
    # What each request carries: "jwt" (one RS256 token, so a cache hit),
    # "session" or "apikey" (one stored in Redis: a cache hit), or
    # "jwt_miss" (a different RS256 token per request: every check
    # verifies a signature) or "session_miss" (a different stored session
    # per request: every check reads Redis on the module's runtime
    # thread). The misses are measured with loadgen, since h2load sends
    # one header value, and left out of the fixed-rate latency runs, whose
    # rate they would lower for every row.
    credential: str = "jwt"
    # The do-nothing module making every call into Envoy that ward's
    # module makes on a JWT hit (its "shaped" filter config).
    shaped: bool = False
    # Another filter config for the do-nothing module ("jwt_authn_edits":
    # only jwt_authn's edits); overrides `shaped`.
    noop_config: str = ""


ENVOY_SCENARIOS = [
    EnvoyScenario("envoy", "Envoy alone (no auth)", "none"),
    EnvoyScenario("envoy_jwt_authn", "Envoy + jwt_authn (RS256, cache on)", "jwt_authn"),
    EnvoyScenario("envoy_noop", "Envoy + ext_authz -> no-op (TCP)", "ext_authz", "noop"),
    EnvoyScenario("envoy_noop_shaped", "Envoy + ext_authz -> no-op, ward-shaped",
                  "ext_authz", "noop_shaped"),
    EnvoyScenario("envoy_ward_tcp", "Envoy + ext_authz -> ward (TCP)", "ext_authz", "ward"),
    EnvoyScenario("envoy_ward_uds", "Envoy + ext_authz -> ward (Unix socket)", "ext_authz",
                  "ward", unix=True),
    # ward inside Envoy (libward_envoy.so), beside its floor: a module
    # that reads one header and sets one (benches/tools/noop_module.c).
    EnvoyScenario("envoy_noop_module", "Envoy + do-nothing module", "noop_module"),
    EnvoyScenario("envoy_noop_module_shaped", "Envoy + do-nothing module, ward-shaped",
                  "noop_module", shaped=True),
    EnvoyScenario("envoy_ward_module_jwt", "Envoy + ward module, JWT RS256 cache hit", "module"),
    EnvoyScenario("envoy_ward_module_session", "Envoy + ward module, session cache hit",
                  "module", credential="session"),
    EnvoyScenario("envoy_ward_module_apikey", "Envoy + ward module, API key cache hit",
                  "module", credential="apikey"),
    EnvoyScenario("envoy_ward_module_jwt_miss", "Envoy + ward module, JWT RS256 miss (loadgen)",
                  "module", credential="jwt_miss"),
    EnvoyScenario("envoy_ward_module_session_miss",
                  "Envoy + ward module, session miss (Redis; loadgen)", "module",
                  credential="session_miss"),
]

# Rows only scripts/envoy-callgrind counts (not bench rows): the
# do-nothing module making jwt_authn's edits and nothing more.
COUNTED_ONLY_SCENARIOS = [
    EnvoyScenario("envoy_noop_module_jwt_authn_edits",
                  "Envoy + do-nothing module, jwt_authn's edits only", "noop_module",
                  noop_config="jwt_authn_edits"),
]


ENVOY_NAMES = {sc.name for sc in ENVOY_SCENARIOS}


def envoy_scenarios(bed: Bed) -> list[EnvoyScenario]:
    """All envoy scenarios, or those `--scenarios` names (Envoy alone, the
    baseline, always); ratios whose scenarios did not run read as not
    measured."""
    named = {n for n in bed.scenarios if n in ENVOY_NAMES}
    if not named:
        return ENVOY_SCENARIOS
    return [sc for sc in ENVOY_SCENARIOS if sc.name in named | {"envoy"}]
