#!/usr/bin/env python3
"""ward's benchmark bed: runs every scenario and writes results + a chart.

Run it through scripts/bench.sh, which installs the tools and builds the
release binaries first. Python standard library only; the load is made by
real tools (h2load, examples/loadgen.rs) against real processes (ward, the
no-op server examples/noop_authz.rs, Envoy, nginx), each pinned to a CPU.

    scripts/bench.py [--quick] [--only direct,envoy,memory,tail] [--publish]

Phases (see docs/benchmarks.md for what each measures and why):
  direct  gRPC Check straight to the server (server on CPU 0, load on CPU 1)
  envoy   HTTP through a real Envoy (--concurrency 1) to an nginx upstream
  memory  ward's RSS idle and with 10k / 100k / 1M cached identities
  tail    a long run with fresh tokens and expiring entries: p99.9/p50, stalls

Every run starts its server fresh, repetitions are interleaved across
scenarios, and the median is reported. Every process is killed on exit,
including on Ctrl-C or failure. Results go to bench-results/<timestamp>/
(results.json, results.md, chart.svg); --publish also copies the chart to
docs/bench/latest.svg and the table into docs/benchmarks.md.

To add a scenario, append to DIRECT_SCENARIOS or ENVOY_SCENARIOS below: a
scenario names the server to start and the load to send. Scenarios that
need more processes (Redis for sessions and API keys, say) get a `setup`
hook that starts them and returns extra config for ward.
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import glob
import hashlib
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import zlib
from dataclasses import dataclass, field
from typing import Callable, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = os.environ.get("WARD_BENCH_RELEASE_DIR") or os.path.join(ROOT, "target", "release")
WARD_BIN = os.path.join(RELEASE, "ward")
NOOP_BIN = os.path.join(RELEASE, "examples", "noop_authz")
LOADGEN_BIN = os.path.join(RELEASE, "examples", "loadgen")
CHECK_PATH = "/envoy.service.auth.v3.Authorization/Check"
HMAC_SECRET = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# CPUs: the component under test gets CPU 0; everything that only makes or
# absorbs load (load generator, nginx) gets CPU 1. Through Envoy, ext_authz
# servers share CPU 0 with Envoy: a check's CPU then costs proxy
# throughput, exactly as Envoy's in-process jwt_authn filter does.
SERVER_CPU = "0"
LOAD_CPU = "1"

# Load shapes: the same for every scenario of a phase.
DIRECT_CONNS, DIRECT_DEPTH = 4, 32
ENVOY_CONNS, ENVOY_DEPTH = 16, 8

# Targets from the benchmark issue: (key, description, comparison, limit).
TARGETS = [
    ("hit_vs_noop_rps", "ward JWT cache hit Check/s vs no-op", ">=", 0.90),
    ("hit_vs_noop_cpu", "ward CPU per check vs no-op (cache hit)", "<=", 1.20),
    ("session_hit_vs_noop_rps", "ward session cache hit Check/s vs no-op", ">=", 0.90),
    ("apikey_hit_vs_noop_rps", "ward API key cache hit Check/s vs no-op", ">=", 0.90),
    ("session_miss_vs_noop_rps", "ward session all-miss Check/s vs no-op", ">=", 0.50),
    ("routes_10k_vs_hit_rps", "ward cache hit with 10k routes vs without", ">=", 0.95),
    ("envoy_ward_vs_noop", "Envoy+ward req/s vs Envoy+no-op", ">=", 0.95),
    ("envoy_ward_vs_jwt_authn", "Envoy+ward req/s vs Envoy+jwt_authn", ">=", 0.90),
    ("envoy_added_p99_ms", "p99 ward adds through Envoy at fixed rate (ms)", "<=", 1.0),
    ("idle_rss_mb", "ward idle RSS (MB)", "<=", 20.0),
    ("tail_p999_over_p50", "tail run p99.9 / p50", "<=", 10.0),
]


# ----------------------------------------------------------------- utilities

def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what: str, probe: Callable[[], bool], limit: float = 15.0,
               proc: Optional["Proc"] = None) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc is not None and proc.popen.poll() is not None:
            raise RuntimeError(f"{what}: exited with {proc.popen.returncode}\n{proc.tail()}")
        try:
            if probe():
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"{what}: not ready after {limit}s" + (f"\n{proc.tail()}" if proc else ""))


def tcp_open(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, ""


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process (all its threads), in clock ticks."""
    return sum(cpu_split(pid))


def cpu_split(pid: int) -> tuple[int, int]:
    """(utime, stime) of a process (all its threads), in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def busy_ticks() -> int:
    """CPU ticks the whole machine spent busy (all CPUs)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal
    return v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)


def children_ticks() -> float:
    """CPU ticks of this script's finished children (the load tools)."""
    import resource
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r.ru_utime + r.ru_stime) * CLK_TCK


class Foreign:
    """How busy the machine was with processes that are not part of the run
    (another build, say): CPU-seconds per second, over one measurement."""

    def __init__(self, own_pids: list[int]):
        self.pids = own_pids
        self.t0 = time.monotonic()
        self.busy0 = busy_ticks()
        self.own0 = sum(cpu_ticks(p) for p in own_pids) + children_ticks()

    def done(self) -> float:
        own = sum(cpu_ticks(p) for p in self.pids) + children_ticks() - self.own0
        busy = busy_ticks() - self.busy0
        return max(0.0, (busy - own) / CLK_TCK / max(time.monotonic() - self.t0, 1e-9))


def wait_quiet(limit: float) -> float:
    """Waits up to `limit` s for the machine to be idle; returns the last
    reading of busy CPUs (CPU-seconds per second)."""
    deadline = time.monotonic() + limit
    while True:
        b0, t0 = busy_ticks(), time.monotonic()
        time.sleep(1.0)
        busy = (busy_ticks() - b0) / CLK_TCK / (time.monotonic() - t0)
        if busy < 0.1 or time.monotonic() >= deadline:
            return busy
        log(f"  machine busy ({busy * 100:.0f}% of a CPU used by other processes); waiting")


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def median(values: list[float]) -> float:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[i]


class Proc:
    """A child process in its own process group, killed at exit."""

    running: list["Proc"] = []

    def __init__(self, name: str, argv: list[str], cpu: Optional[str], logdir: str,
                 cwd: str = ROOT):
        self.name = name
        self.logpath = os.path.join(logdir, f"{name}.log")
        self.logfile = open(self.logpath, "ab")
        if cpu is not None:
            argv = ["taskset", "-c", cpu] + argv
        env = dict(os.environ, NO_COLOR="1")
        self.popen = subprocess.Popen(argv, stdout=self.logfile, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, cwd=cwd, env=env,
                                      start_new_session=True)
        self.pid = self.popen.pid  # taskset execs: same pid
        Proc.running.append(self)

    def tail(self, n: int = 30) -> str:
        try:
            with open(self.logpath, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.popen.wait(timeout=5)
        self.logfile.close()
        if self in Proc.running:
            Proc.running.remove(self)

    @classmethod
    def stop_all(cls) -> None:
        for p in list(cls.running):
            try:
                p.stop()
            except Exception:  # noqa: BLE001 - best effort at exit
                pass


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)


MAX_FOREIGN = 0.15  # other processes' CPU (in CPUs) above which a run is measured again


def measure(bed: "Bed", what: str, run: Callable[[], dict], attempts: int = 3) -> dict:
    """Runs one measurement; if other processes were busy meanwhile, runs
    it again (up to `attempts` times in all, within a retry budget for the
    whole bench) and keeps the quietest attempt."""
    best = None
    for attempt in range(attempts):
        r = run()
        if best is None or r["foreign_cpu"] < best["foreign_cpu"]:
            best = r
        if r["foreign_cpu"] <= MAX_FOREIGN or bed.retries_left <= 0 or attempt == attempts - 1:
            break
        bed.retries_left -= 1
        log(f"  {what}: other processes used {r['foreign_cpu'] * 100:.0f}% of a CPU meanwhile; "
            f"measuring again")
    bed.foreign.append(best["foreign_cpu"])
    return best


def run_tool(argv: list[str], cpu: Optional[str], timeout: float, what: str) -> str:
    """Runs a load tool to completion (bounded), returns its stdout."""
    if cpu is not None:
        argv = ["taskset", "-c", cpu] + argv
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if r.returncode != 0:
        raise RuntimeError(f"{what} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return r.stdout


# ------------------------------------------------------------------ servers

class Bed:
    """Shared state of one benchmark run."""

    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.scenarios = [n.strip() for n in (args.scenarios or "").split(",") if n.strip()]
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.outdir = os.path.join(ROOT, "bench-results", stamp + ("-quick" if args.quick else ""))
        self.tmp = os.path.join(self.outdir, "tmp")
        self.logs = os.path.join(self.outdir, "logs")
        self.cache = os.path.join(ROOT, "bench-results", "tmp")
        for d in (self.tmp, self.logs, self.cache):
            os.makedirs(d, exist_ok=True)
        self.envoy_bin = find_envoy()
        self.results: dict = {}
        self.counter = 0
        self.foreign: list[float] = []  # other processes' CPU during each measurement
        self.authz_cpu = args.authz_cpu
        self.retries_left = 6 if args.quick else 16

    def name(self, base: str) -> str:
        self.counter += 1
        return f"{self.counter:03d}-{base}"


def find_envoy() -> str:
    env = os.environ.get("WARD_ENVOY_BIN")
    if env and os.path.isfile(env):
        return env
    for b in glob.glob(os.path.join(ROOT, ".venv-envoy/lib/python3*/site-packages/envoy/_bin/envoy")):
        if os.access(b, os.X_OK):
            return b
    raise SystemExit("Envoy not found: run scripts/bench.sh (it installs .venv-envoy)")


WARD_KEYS = [
    {"kid": "bench-rs256", "alg": "RS256", "pem_file": "tests/fixtures/keys/rsa.pub"},
    {"kid": "bench-es256", "alg": "ES256", "pem_file": "tests/fixtures/keys/ec256.pub"},
    {"kid": "bench-hs256", "alg": "HS256", "secret": {"value": HMAC_SECRET}},
]


class Ward:
    def __init__(self, bed: Bed, cpu: str, cache: Optional[dict] = None, unix: bool = False,
                 extra: Optional[dict] = None):
        self.grpc_port, self.admin_port = free_port(), free_port()
        name = bed.name("ward")
        self.unix_path = os.path.join(bed.tmp, f"{name}.sock") if unix else None
        config = {
            "listen": {"grpc": f"127.0.0.1:{self.grpc_port}",
                       "admin": f"127.0.0.1:{self.admin_port}"},
            "runtime": {"worker_threads": 1},
            "log": {"format": "text", "level": "warn"},
            "jwt": {"issuers": ["https://idp.test"], "audiences": ["api"], "keys": WARD_KEYS},
            # Both caches hold every credential a run sends, so that the miss
            # scenarios measure a miss, not eviction (see ward_session_miss_full).
            "cache": cache or {"max_entries": 200000, "max_ttl": "300s",
                               "store_max_entries": 400000},
        }
        if self.unix_path:
            config["listen"]["unix_socket"] = self.unix_path
        for k, v in (extra or {}).items():
            config[k] = v
        path = os.path.join(bed.tmp, f"{name}.yaml")
        with open(path, "w") as f:
            json.dump(config, f, indent=1)  # JSON is YAML
        self.proc = Proc(name, [WARD_BIN, "serve", "--config", path], cpu, bed.logs)
        self.pid = self.proc.pid
        wait_until("ward /readyz", lambda: http_get(self.admin_port, "/readyz")[0] == 200,
                   proc=self.proc)

    def metrics(self) -> dict[str, float]:
        status, text = http_get(self.admin_port, "/metrics")
        out: dict[str, float] = {}
        if status != 200:
            return out
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                try:
                    out[name] = float(value)
                except ValueError:
                    pass
        return out

    def decisions(self, method: Optional[str] = None) -> tuple[float, float]:
        """(allow, deny) counts from ward_check_total (of one method if given)."""
        allow = deny = 0.0
        for k, v in self.metrics().items():
            if k.startswith("ward_check_total{") and (method is None or f'method="{method}"' in k):
                if 'decision="allow"' in k:
                    allow += v
                elif 'decision="deny"' in k:
                    deny += v
        return allow, deny

    def stop(self) -> None:
        self.proc.stop()


class Noop:
    def __init__(self, bed: Bed, cpu: str, shaped: bool = False, lean: bool = False):
        self.grpc_port = free_port()
        self.proc = Proc(bed.name("noop"), [NOOP_BIN, "--listen", f"127.0.0.1:{self.grpc_port}",
                                            "--workers", "1"] + (["--shaped"] if shaped else [])
                         + (["--lean"] if lean else []),
                         cpu, bed.logs)
        self.pid = self.proc.pid
        self.unix_path = None
        wait_until("noop_authz", lambda: tcp_open(self.grpc_port), proc=self.proc)

    def decisions(self, method: Optional[str] = None):
        return None

    def stop(self) -> None:
        self.proc.stop()


class Nginx:
    def __init__(self, bed: Bed, cpu: str):
        self.port = free_port()
        d = os.path.join(bed.tmp, bed.name("nginx"))
        os.makedirs(d, exist_ok=True)
        conf = f"""
worker_processes 1;
daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    server {{
        listen 127.0.0.1:{self.port} backlog=4096;
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""
        path = os.path.join(d, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = Proc("nginx", [nginx, "-p", d, "-e", f"{d}/error.log", "-c", path], cpu,
                         bed.logs)
        wait_until("nginx", lambda: http_get(self.port, "/")[0] == 200, proc=self.proc)

    def stop(self) -> None:
        self.proc.stop()


def envoy_config(mode: str, http_port: int, admin_port: int, upstream_port: int,
                 authz_port: Optional[int] = None, authz_unix: Optional[str] = None,
                 jwks: Optional[str] = None) -> dict:
    """The bootstrap for one Envoy scenario: the same listener and route for
    all, differing only in the auth filter."""

    def sock(port):
        return {"socket_address": {"address": "127.0.0.1", "port_value": port}}

    def cluster(name, address, http2=False):
        c = {"name": name, "type": "STATIC", "connect_timeout": "1s",
             "load_assignment": {"cluster_name": name, "endpoints": [
                 {"lb_endpoints": [{"endpoint": {"address": address}}]}]}}
        if http2:
            c["typed_extension_protocol_options"] = {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}}}}
        return c

    filters = []
    clusters = [cluster("upstream", sock(upstream_port))]
    if mode == "ext_authz":
        filters.append({"name": "envoy.filters.http.ext_authz", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
            "transport_api_version": "V3",
            "failure_mode_allow": False,
            "status_on_error": {"code": 503},
            "include_peer_certificate": False,
            "grpc_service": {"envoy_grpc": {"cluster_name": "authz"}, "timeout": "0.5s"}}})
        address = {"pipe": {"path": authz_unix}} if authz_unix else sock(authz_port)
        clusters.append(cluster("authz", address, http2=True))
    elif mode == "jwt_authn":
        filters.append({"name": "envoy.filters.http.jwt_authn", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {"bench": {
                "issuer": "https://idp.test",
                "audiences": ["api"],
                "forward": True,
                "local_jwks": {"inline_string": jwks},
                # Like ward's identity headers.
                "claim_to_headers": [{"header_name": "x-user-id", "claim_name": "sub"},
                                     {"header_name": "x-user-email", "claim_name": "email"}],
                "jwt_cache_config": {"jwt_cache_size": 1000}}},
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "bench"}}]}})
    filters.append({"name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}})
    return {
        "admin": {"address": sock(admin_port)},
        "static_resources": {
            "listeners": [{"name": "ingress", "address": sock(http_port), "filter_chains": [{
                "filters": [{"name": "envoy.filters.network.http_connection_manager",
                             "typed_config": {
                                 "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                                 "stat_prefix": "ingress_http",
                                 "codec_type": "AUTO",
                                 "normalize_path": True,
                                 "merge_slashes": True,
                                 "route_config": {"name": "local", "virtual_hosts": [{
                                     "name": "all", "domains": ["*"],
                                     "routes": [{"match": {"prefix": "/"},
                                                 "route": {"cluster": "upstream"}}]}]},
                                 "http_filters": filters}}]}]}],
            "clusters": clusters,
        },
    }


class Envoy:
    def __init__(self, bed: Bed, cpu: str, config_args: dict):
        self.http_port, self.admin_port = free_port(), free_port()
        name = bed.name("envoy-" + config_args["mode"])
        config = envoy_config(http_port=self.http_port, admin_port=self.admin_port, **config_args)
        path = os.path.join(bed.tmp, f"{name}.json")
        with open(path, "w") as f:
            json.dump(config, f, indent=1)
        self.proc = Proc(name, [bed.envoy_bin, "-c", path, "--concurrency", "1",
                                "--base-id", str(self.admin_port), "--log-level", "warning"],
                         cpu, bed.logs)
        self.pid = self.proc.pid
        wait_until("envoy /ready", lambda: http_get(self.admin_port, "/ready")[0] == 200,
                   proc=self.proc)

    def stop(self) -> None:
        self.proc.stop()


# ------------------------------------------------------------------ tokens

def token_pool(bed: Bed, alg: str, count: int, exp_secs: int, prefix: str,
               reusable: bool = True) -> str:
    """A file of `count` valid tokens. Pools of long-lived tokens are kept
    in bench-results/tmp and reused while they have more than a day left:
    RS256 signing is the slow part of a first run."""
    kid = f"bench-{alg.lower()}"
    path = os.path.join(bed.cache if reusable else bed.tmp, f"pool-{alg}-{prefix}{count}.txt")
    meta = path + ".exp"
    if reusable:
        # Any kept pool at least this large will do (extra tokens go unused).
        for old in glob.glob(os.path.join(bed.cache, f"pool-{alg}-{prefix}*.txt")):
            m = re.search(r"-(\d+)\.txt$", old)
            if not m or int(m.group(1)) < count or not os.path.exists(old + ".exp"):
                continue
            with open(old + ".exp") as f:
                exp = float(f.read().strip() or 0)
            if exp - time.time() > 86400:
                return old
    t = time.monotonic()
    run_tool([LOADGEN_BIN, "mint", "--alg", alg, "--kid", kid, "--count", str(count),
              "--exp-secs", str(exp_secs), "--prefix", prefix, "--out", path],
             None, 900, f"mint {alg}")
    with open(meta, "w") as f:
        f.write(str(time.time() + exp_secs))
    log(f"  minted {count} {alg} tokens in {time.monotonic() - t:.1f}s")
    return path


def one_token(bed: Bed, alg: str = "RS256") -> str:
    return token_pool(bed, alg, 1, 7 * 86400, "hot-")


# ------------------------------------------------------- sessions, API keys

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_B62_TABLE = bytes((BASE62 * 5)[:256], "ascii")


def random_base62(n: int) -> str:
    """n base62 characters (bytes mod 62: slightly biased, fine for ids)."""
    return os.urandom(n).translate(_B62_TABLE).decode()


def resp(*args: str) -> bytes:
    """One Redis command in the wire protocol (for redis-cli --pipe)."""
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class Redis:
    """A throwaway redis-server (no persistence) on the load CPU, holding
    the sessions and API keys of the direct phase."""

    def __init__(self, bed: Bed, cpu: str):
        if not shutil.which("redis-server") or not shutil.which("redis-cli"):
            raise SystemExit("redis-server missing: run scripts/bench.sh (it installs it)")
        self.port = free_port()
        self.proc = Proc(bed.name("redis"), ["redis-server", "--port", str(self.port),
                                             "--bind", "127.0.0.1", "--save", "",
                                             "--appendonly", "no", "--dir", bed.tmp],
                         cpu, bed.logs)
        self.pid = self.proc.pid
        self.url = f"redis://127.0.0.1:{self.port}"
        wait_until("redis-server", lambda: tcp_open(self.port), proc=self.proc)
        self.sessions: list[str] = []  # written so far; the first is the hot one
        self.api_key: Optional[str] = None

    def pipe(self, commands: bytes, what: str) -> None:
        r = subprocess.run(["redis-cli", "-p", str(self.port), "--pipe"], input=commands,
                           capture_output=True, timeout=300)
        if r.returncode != 0 or b"errors: 0" not in r.stdout:
            raise RuntimeError(f"redis-cli --pipe ({what}) failed:\n{r.stdout[-1000:]!r}"
                               f"\n{r.stderr[-1000:]!r}")

    def ensure_sessions(self, count: int) -> None:
        """At least `count` valid sessions (`session:{sid}`, a day long)."""
        need = count - len(self.sessions)
        if need <= 0:
            return
        t = time.monotonic()
        exp = str(int(time.time()) + 86400)
        new = [random_base62(32) for _ in range(need)]
        cmds = b"".join(resp("HSET", f"session:{sid}", "user_id", "bench-user",
                             "expires_at", exp) + resp("EXPIRE", f"session:{sid}", "86400")
                        for sid in new)
        self.pipe(cmds, "sessions")
        self.sessions += new
        log(f"  wrote {need:,} sessions to Redis in {time.monotonic() - t:.1f}s")

    def ensure_api_key(self) -> str:
        """One valid ward-format API key (`apikey:{sha256hex}`, no expiry)."""
        if self.api_key is None:
            body = "ward_" + random_base62(32)
            crc, digits = zlib.crc32(body.encode()), []
            for _ in range(6):
                crc, d = divmod(crc, 62)
                digits.append(BASE62[d])
            key = body + "".join(reversed(digits))
            digest = hashlib.sha256(key.encode()).hexdigest()
            key_id = "key_" + random_base62(16)
            self.pipe(resp("HSET", f"apikey:{digest}", "key_id", key_id, "user_id", "bench-bot",
                           "name", "bench") + resp("SET", f"apikey_id:{key_id}", digest),
                      "API key")
            self.api_key = key
        return self.api_key


def bed_redis(bed: Bed) -> Redis:
    if getattr(bed, "redis", None) is None:
        bed.redis = Redis(bed, LOAD_CPU)
    return bed.redis


def redis_store(bed: Bed) -> dict:
    """ward config for the scenarios that read sessions and API keys."""
    return {"store": {"redis": {"url": bed_redis(bed).url}}}


def lines_file(bed: Bed, name: str, lines: list[str]) -> str:
    path = os.path.join(bed.tmp, name)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def session_hit_args(bed: Bed) -> list[str]:
    r = bed_redis(bed)
    r.ensure_sessions(1)
    return ["--tokens", lines_file(bed, "session-hot.txt", r.sessions[:1]),
            "--header-name", "cookie", "--value-prefix", "session_id="]


def apikey_hit_args(bed: Bed) -> list[str]:
    key = bed_redis(bed).ensure_api_key()
    return ["--tokens", lines_file(bed, "apikey-hot.txt", [key]),
            "--header-name", "x-api-key", "--value-prefix", ""]


def session_miss_args(rate_guess: int):
    """A different stored session per request, each sent once (ward
    restarts per run, so its cache starts empty and the ids are reused)."""

    def args(bed: Bed) -> list[str]:
        count = int(math.ceil(rate_guess * bed.direct_window * 1.15 / 1000.0) * 1000)
        r = bed_redis(bed)
        r.ensure_sessions(count + 1)
        return ["--tokens", lines_file(bed, f"session-miss-{count}.txt", r.sessions[1:count + 1]),
                "--once", "--header-name", "cookie", "--value-prefix", "session_id="]

    return args


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


def hot_token_args(bed: Bed) -> list[str]:
    return ["--tokens", one_token(bed)]


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


def miss_args(alg: str, rate_guess: int):
    """A pool of distinct tokens, each sent once: every check is a miss
    (ward restarts per run, so the pool is reused across repetitions)."""

    def args(bed: Bed) -> list[str]:
        d = bed.direct_window
        count = int(math.ceil(rate_guess * d * 1.15 / 1000.0) * 1000)
        return ["--tokens", token_pool(bed, alg, count, 7 * 86400, "miss-"), "--once"]

    return args


DIRECT_SCENARIOS = [
    DirectScenario("noop", "no-op server (baseline)", "noop", tokens=hot_token_args),
    DirectScenario("noop_shaped", "no-op server, ward-shaped answer", "noop_shaped",
                   tokens=hot_token_args),
    DirectScenario("noop_lean", "no-op server, ward's request decoding", "noop_lean",
                   tokens=hot_token_args),
    DirectScenario("ward_hit", "ward, JWT RS256, cache hit", "ward", tokens=hot_token_args),
    DirectScenario("ward_hit_10k_routes", "ward, JWT cache hit, 10k routes", "ward",
                   tokens=hot_token_args, ward_extra={"routes": ten_thousand_routes()}),
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
    # The same two with h2load, to show loadgen is not the bottleneck.
    DirectScenario("h2load_noop", "no-op server, h2load", "noop", tool="h2load",
                   tokens=hot_token_args, crosscheck=True),
    DirectScenario("h2load_ward_hit", "ward cache hit, h2load", "ward", tool="h2load",
                   tokens=hot_token_args, crosscheck=True),
]


def ms(seconds: float) -> str:
    """A duration for h2load, which takes no fractional seconds."""
    return f"{int(round(seconds * 1000))}ms"


def parse_h2load(out: str) -> dict:
    m = re.search(r"finished in ([\d.]+)s, ([\d.]+) req/s", out)
    req = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                    r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if not (m and req and codes):
        raise RuntimeError(f"cannot parse h2load output:\n{out[-2000:]}")
    return {"seconds": float(m.group(1)), "rps": float(m.group(2)),
            "done": int(req.group(3)), "succeeded": int(req.group(4)),
            "failed": int(req.group(5)), "errored": int(req.group(6)),
            "2xx": int(codes.group(1)), "non2xx": sum(int(codes.group(i)) for i in (2, 3, 4))}


def run_direct_once(bed: Bed, sc: DirectScenario) -> dict:
    helpers = []
    if sc.server == "ward":
        extra = dict(sc.ward_extra)
        if sc.setup:
            extra.update(sc.setup(bed))
            if getattr(bed, "redis", None) is not None:
                helpers.append(bed.redis.pid)
        server = Ward(bed, SERVER_CPU, extra=extra)
    else:
        server = Noop(bed, SERVER_CPU, shaped=sc.server == "noop_shaped",
                      lean=sc.server == "noop_lean")
    try:
        token_args = sc.tokens(bed) if sc.tokens else []
        warmup, duration = bed.direct_warmup, bed.direct_duration
        foreign = Foreign([server.pid] + helpers)
        h0 = sum(cpu_ticks(p) for p in helpers)
        (u0, s0), t0 = cpu_split(server.pid), time.monotonic()
        c0 = u0 + s0
        if sc.tool == "loadgen":
            out_path = os.path.join(bed.tmp, bed.name(f"loadgen-{sc.name}") + ".json")
            run_tool([LOADGEN_BIN, "run", "--addr", f"127.0.0.1:{server.grpc_port}",
                      "--conns", str(DIRECT_CONNS), "--depth", str(DIRECT_DEPTH),
                      "--warmup", str(warmup), "--duration", str(duration), "--out", out_path]
                     + token_args, LOAD_CPU, warmup + duration + 60, f"loadgen {sc.name}")
            c1, t1 = cpu_ticks(server.pid), time.monotonic()
            with open(out_path) as f:
                rep = json.load(f)
            total = rep["all"]["sent"]
            m = rep["measured"]
            bad = m["deny"] + m["grpc_error"] + m["transport_error"]
            if sc.expect_allow and (bad or m["allow"] == 0):
                raise RuntimeError(f"{sc.name}: expected only allows, got {m}")
            r = {"rps": rep["rps"], "p50_us": rep["latency_us"]["p50"],
                 "p99_us": rep["latency_us"]["p99"], "p999_us": rep["latency_us"]["p999"],
                 "max_us": rep["latency_us"]["max"], "requests": total,
                 "window_s": rep["window_s"], "allow": rep["all"]["allow"]}
        else:
            frame = os.path.join(bed.tmp, f"frame-{sc.name}.bin")
            tokfile = token_args[1] if token_args else None
            run_tool([LOADGEN_BIN, "frame", "--out", frame]
                     + (["--token-file", tokfile] if tokfile else []), None, 30, "frame")
            out = run_tool(["h2load", f"-c{DIRECT_CONNS}", f"-m{DIRECT_DEPTH}",
                            f"-D{ms(duration)}", f"--warm-up-time={ms(warmup)}", "-d", frame,
                            "-H", "content-type: application/grpc", "-H", "te: trailers",
                            f"http://127.0.0.1:{server.grpc_port}{CHECK_PATH}"],
                           LOAD_CPU, warmup + duration + 60, f"h2load {sc.name}")
            c1, t1 = cpu_ticks(server.pid), time.monotonic()
            h = parse_h2load(out)
            if h["non2xx"] or h["failed"] or h["errored"]:
                raise RuntimeError(f"{sc.name}: h2load saw failures: {h}")
            r = {"rps": h["rps"], "requests": None}
            total = None
        r["foreign_cpu"] = foreign.done()
        if helpers:  # Redis: on the load CPU, not counted in the server's CPU
            r["redis_cpu_s"] = (sum(cpu_ticks(p) for p in helpers) - h0) / CLK_TCK
        cpu_s = (c1 - c0) / CLK_TCK
        r["server_cpu_s"] = cpu_s
        u1, s1 = cpu_split(server.pid)
        r["server_sys_share"] = (s1 - s0) / max(u1 + s1 - c0, 1)  # kernel share of its CPU
        r["server_util"] = cpu_s / max(t1 - t0, 1e-9)
        if total:
            r["cpu_ms_per_1k"] = cpu_s * 1e6 / total  # ms of CPU per 1000 checks
        decisions = server.decisions(sc.method)
        if decisions is not None:
            allow, deny = decisions
            r["ward_allow"], r["ward_deny"] = allow, deny
            if sc.expect_allow and (deny > 0 or allow == 0 or (total and allow < total)):
                raise RuntimeError(f"{sc.name}: ward metrics say allow={allow} deny={deny} "
                                   f"(method {sc.method or 'any'}), "
                                   f"loadgen sent {total}")
        return r
    finally:
        server.stop()


def direct_scenarios(bed: Bed) -> list[DirectScenario]:
    """All scenarios, or those `--scenarios` names (the baseline always)."""
    if not bed.scenarios:
        return DIRECT_SCENARIOS
    known = {sc.name for sc in DIRECT_SCENARIOS}
    unknown = sorted(set(bed.scenarios) - known)
    if unknown:
        raise SystemExit(f"--scenarios: unknown {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    keep = set(bed.scenarios) | {"noop"} | ({"h2load_noop"} if any(
        n.startswith("h2load_") for n in bed.scenarios) else set())
    return [sc for sc in DIRECT_SCENARIOS if sc.name in keep]


def phase_direct(bed: Bed) -> dict:
    scenarios = direct_scenarios(bed)
    q = bed.quick
    bed.direct_warmup, bed.direct_duration = (0.5, 2.0) if q else (1.0, 4.0)
    bed.direct_window = bed.direct_warmup + bed.direct_duration
    reps = 2 if q else 3
    log(f"direct: {len(scenarios)} scenarios x {reps} repetitions, "
        f"{DIRECT_CONNS} conns x {DIRECT_DEPTH} in flight, "
        f"{bed.direct_warmup}s warm-up + {bed.direct_duration}s")
    for sc in scenarios:  # mint before timing anything
        if sc.tokens:
            sc.tokens(bed)
    runs: dict[str, list[dict]] = {sc.name: [] for sc in scenarios}
    for rep in range(reps):
        for sc in scenarios:
            r = measure(bed, sc.name, lambda: run_direct_once(bed, sc))
            runs[sc.name].append(r)
            log(f"  [{rep + 1}/{reps}] {sc.name:18s} {r['rps']:9.0f} Check/s"
                + (f"  p99 {r['p99_us'] / 1000:.2f} ms" if "p99_us" in r else "")
                + (f"  {r['cpu_ms_per_1k']:.1f} ms CPU/1k" if "cpu_ms_per_1k" in r else "")
                + f"  server CPU {r['server_util'] * 100:.0f}%"
                + (f" ({r['server_sys_share'] * 100:.0f}% kernel)" if "server_sys_share" in r else "")
                + (f"  (other processes: {r['foreign_cpu'] * 100:.0f}% CPU)"
                   if r["foreign_cpu"] > 0.05 else ""))
    out = {"conns": DIRECT_CONNS, "depth": DIRECT_DEPTH, "reps": reps,
           "warmup_s": bed.direct_warmup, "duration_s": bed.direct_duration, "scenarios": {}}
    base = None
    for sc in scenarios:
        rs = runs[sc.name]
        med = {k: median([r.get(k) for r in rs]) for k in rs[0] if isinstance(rs[0][k], (int, float))}
        out["scenarios"][sc.name] = {"label": sc.label, "tool": sc.tool, "crosscheck": sc.crosscheck,
                                     "median": med, "runs": rs}
        if sc.name == "noop":
            base = med
    # Ratios against the baseline, per repetition (same run), then median.
    for sc in scenarios:
        s = out["scenarios"][sc.name]
        ref = "h2load_noop" if sc.tool == "h2load" else "noop"
        pairs = list(zip(runs[sc.name], runs[ref]))
        s["rps_ratio"] = median([a["rps"] / b["rps"] for a, b in pairs])
        if "cpu_ms_per_1k" in s["median"] and base and "cpu_ms_per_1k" in base:
            s["cpu_ratio"] = median([a["cpu_ms_per_1k"] / b["cpu_ms_per_1k"] for a, b in pairs])
        if "noop_lean" in runs and sc.tool == "loadgen":
            # Against the no-op that decodes requests as ward does: what
            # ward's own work costs, apart from the decoding it saves.
            s["rps_ratio_lean"] = median([a["rps"] / b["rps"]
                                          for a, b in zip(runs[sc.name], runs["noop_lean"])])
    return out


# ------------------------------------------------------------------ envoy

@dataclass
class EnvoyScenario:
    name: str
    label: str
    mode: str                    # "none" | "jwt_authn" | "ext_authz"
    authz: Optional[str] = None  # "noop" | "noop_shaped" | "ward"
    unix: bool = False


ENVOY_SCENARIOS = [
    EnvoyScenario("envoy", "Envoy alone (no auth)", "none"),
    EnvoyScenario("envoy_jwt_authn", "Envoy + jwt_authn (RS256, cache on)", "jwt_authn"),
    EnvoyScenario("envoy_noop", "Envoy + ext_authz -> no-op (TCP)", "ext_authz", "noop"),
    EnvoyScenario("envoy_noop_shaped", "Envoy + ext_authz -> no-op, ward-shaped",
                  "ext_authz", "noop_shaped"),
    EnvoyScenario("envoy_ward_tcp", "Envoy + ext_authz -> ward (TCP)", "ext_authz", "ward"),
    EnvoyScenario("envoy_ward_uds", "Envoy + ext_authz -> ward (Unix socket)", "ext_authz",
                  "ward", unix=True),
]


class EnvoyStack:
    """Envoy (+ its authz server) for one scenario, nginx shared."""

    def __init__(self, bed: Bed, sc: EnvoyScenario, nginx: Nginx):
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
        try:
            self.envoy = Envoy(bed, SERVER_CPU, args)
        except Exception:
            if self.authz:
                self.authz.stop()
            raise

    def stop(self):
        self.envoy.stop()
        if self.authz:
            self.authz.stop()


def h2load_envoy(bed: Bed, stack: EnvoyStack, token: str, duration: float, warmup: float) -> dict:
    argv = ["h2load", f"-c{ENVOY_CONNS}", f"-m{ENVOY_DEPTH}", f"-D{ms(duration)}",
            f"--warm-up-time={ms(warmup)}", "-H", f"authorization: Bearer {token}"]
    argv.append(f"http://127.0.0.1:{stack.envoy.http_port}/api/v1/items?limit=10")
    before = stack.authz.decisions() if isinstance(stack.authz, Ward) else None
    cpu0 = {n: cpu_ticks(p.pid) for n, p in stack.procs().items()}
    foreign = Foreign([p.pid for p in stack.procs().values()] + [stack.nginx.proc.pid])
    t0 = time.monotonic()
    out = run_tool(argv, LOAD_CPU, duration + warmup + 60, "h2load via Envoy")
    t1 = time.monotonic()
    util = {n: (cpu_ticks(p.pid) - cpu0[n]) / CLK_TCK / (t1 - t0) for n, p in stack.procs().items()}
    h = parse_h2load(out)
    if h["non2xx"] or h["failed"] or h["errored"] or h["2xx"] == 0:
        raise RuntimeError(f"requests through Envoy failed: {h}\n{stack.envoy.proc.tail()}")
    if before is not None:
        allow, deny = stack.authz.decisions()
        if deny - before[1] > 0 or allow - before[0] < h["2xx"]:
            raise RuntimeError(f"ward denied or missed checks: allow {allow - before[0]}, "
                               f"deny {deny - before[1]}, 2xx {h['2xx']}")
    h["util"] = util
    h["foreign_cpu"] = foreign.done()
    return h


def EnvoyStack_procs(self) -> dict:
    procs = {"envoy": self.envoy}
    if self.authz:
        procs["authz"] = self.authz
    return procs


EnvoyStack.procs = EnvoyStack_procs


def latency_through_envoy(bed: Bed, stack: EnvoyStack, tokens: str, rate: float,
                          duration: float, warmup: float) -> dict:
    """p50/p99 (ms) at a fixed rate through Envoy, with loadgen's open-loop
    HTTP mode (h2load --rps sends in bursts every ~10 ms, which would be
    measured as latency)."""
    out_path = os.path.join(bed.tmp, bed.name("latency") + ".json")
    before = stack.authz.decisions() if isinstance(stack.authz, Ward) else None
    foreign = Foreign([p.pid for p in stack.procs().values()] + [stack.nginx.proc.pid])
    run_tool([LOADGEN_BIN, "run", "--addr", f"127.0.0.1:{stack.envoy.http_port}",
              "--http-path", "/api/v1/items?limit=10", "--conns", str(ENVOY_CONNS),
              "--depth", str(ENVOY_DEPTH), "--warmup", str(warmup), "--duration", str(duration),
              "--rps", str(rate), "--tokens", tokens, "--out", out_path],
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


def phase_envoy(bed: Bed) -> dict:
    q = bed.quick
    warmup, duration = (0.5, 2.0) if q else (1.0, 4.0)
    reps = 2 if q else 3
    lat_duration = 2.5 if q else 5.0
    bed.jwks = run_tool([LOADGEN_BIN, "jwks", "--alg", "RS256", "--kid", "bench-rs256"],
                        None, 30, "jwks").strip()
    with open(one_token(bed)) as f:
        token = f.readline().strip()
    log(f"envoy: {len(ENVOY_SCENARIOS)} scenarios x {reps} repetitions, h2load "
        f"{ENVOY_CONNS} conns x {ENVOY_DEPTH} streams, {warmup}s + {duration}s; "
        f"Envoy on CPU {SERVER_CPU}, authz server on CPU {bed.authz_cpu}, "
        f"h2load + nginx on CPU {LOAD_CPU}")
    nginx = Nginx(bed, LOAD_CPU)
    runs: dict[str, list[dict]] = {sc.name: [] for sc in ENVOY_SCENARIOS}
    lats: dict[str, list[dict]] = {sc.name: [] for sc in ENVOY_SCENARIOS}
    try:
        for rep in range(reps):
            for sc in ENVOY_SCENARIOS:
                def once():
                    stack = EnvoyStack(bed, sc, nginx)
                    try:
                        return h2load_envoy(bed, stack, token, duration, warmup)
                    finally:
                        stack.stop()

                h = measure(bed, sc.name, once)
                runs[sc.name].append(h)
                log(f"  [{rep + 1}/{reps}] {sc.name:16s} {h['rps']:8.0f} req/s  CPU "
                    + " ".join(f"{k} {v * 100:.0f}%" for k, v in h["util"].items())
                    + (f"  (other processes: {h['foreign_cpu'] * 100:.0f}% CPU)"
                       if h["foreign_cpu"] > 0.05 else ""))
        maxes = {n: median([r["rps"] for r in rs]) for n, rs in runs.items()}
        # Fixed rate: half of Envoy alone's max, as asked, unless a scenario
        # saturates below that; then half of the slowest one's max, so no
        # scenario is measured while queueing.
        half_alone = maxes["envoy"] / 2
        rate = min(half_alone, min(maxes.values()) / 2)
        rate = max(100.0, math.floor(rate / 100) * 100)
        lat_reps = 1 if q else 3
        log(f"  latency at a fixed {rate:.0f} req/s (Envoy alone max {maxes['envoy']:.0f}), "
            f"{lat_reps} x {lat_duration}s per scenario")
        for rep in range(lat_reps):
            for sc in ENVOY_SCENARIOS:
                def once():
                    stack = EnvoyStack(bed, sc, nginx)
                    try:
                        return latency_through_envoy(bed, stack, one_token(bed), rate,
                                                     lat_duration, 1.0)
                    finally:
                        stack.stop()

                lt = measure(bed, sc.name, once)
                lats[sc.name].append(lt)
                log(f"  [{rep + 1}/{lat_reps}] {sc.name:16s} p50 {lt['p50_ms']:.3f} ms  "
                    f"p99 {lt['p99_ms']:.3f} ms  ({lt['rps']:.0f} req/s)")
    finally:
        nginx.stop()
    out = {"conns": ENVOY_CONNS, "depth": ENVOY_DEPTH, "reps": reps, "warmup_s": warmup,
           "duration_s": duration, "fixed_rate": rate, "half_envoy_alone": half_alone,
           "pinning": {"envoy": SERVER_CPU, "authz": bed.authz_cpu, "nginx": LOAD_CPU,
                       "h2load": LOAD_CPU},
           "scenarios": {}}
    for sc in ENVOY_SCENARIOS:
        rs = runs[sc.name]
        out["scenarios"][sc.name] = {
            "label": sc.label,
            "rps": median([r["rps"] for r in rs]),
            "rps_runs": [r["rps"] for r in rs],
            "foreign_cpu": median([r["foreign_cpu"] for r in rs]),
            "util": {k: median([r["util"][k] for r in rs]) for k in rs[0]["util"]},
            "latency": {k: median([x[k] for x in lats[sc.name]])
                        for k in ("p50_ms", "p99_ms", "p999_ms", "max_ms", "rps")},
        }
    s = out["scenarios"]

    def rep_ratio(a, b):
        return median([x["rps"] / y["rps"] for x, y in zip(runs[a], runs[b])])

    for sc in ENVOY_SCENARIOS:
        s[sc.name]["vs_envoy"] = rep_ratio(sc.name, "envoy")
    out["ratios"] = {
        "ward_tcp_vs_noop": rep_ratio("envoy_ward_tcp", "envoy_noop"),
        "ward_tcp_vs_jwt_authn": rep_ratio("envoy_ward_tcp", "envoy_jwt_authn"),
        "ward_uds_vs_noop": rep_ratio("envoy_ward_uds", "envoy_noop"),
        "ward_uds_vs_jwt_authn": rep_ratio("envoy_ward_uds", "envoy_jwt_authn"),
        "ward_tcp_vs_noop_shaped": rep_ratio("envoy_ward_tcp", "envoy_noop_shaped"),
        "noop_shaped_vs_noop": rep_ratio("envoy_noop_shaped", "envoy_noop"),
        "noop_vs_jwt_authn": rep_ratio("envoy_noop", "envoy_jwt_authn"),
    }
    base = s["envoy"]["latency"]
    for sc in ENVOY_SCENARIOS:
        lt = s[sc.name]["latency"]
        lt["added_p50_ms"] = lt["p50_ms"] - base["p50_ms"]
        lt["added_p99_ms"] = lt["p99_ms"] - base["p99_ms"]
    return out


# ------------------------------------------------------------------ memory

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


# ------------------------------------------------------------------ tail

def phase_tail(bed: Bed, direct: Optional[dict]) -> dict:
    duration = 15.0 if bed.quick else 60.0
    warmup = 1.0
    every = 20  # 5% fresh
    # Open loop at half of what ward can do with this mix (estimated from
    # the direct phase's cache-hit and ES256-miss maxima), so the run shows
    # stalls rather than queueing.
    capacity = 40000.0
    if direct and {"ward_hit", "ward_miss_es256"} <= set(direct["scenarios"]):
        sc = direct["scenarios"]
        hit, miss = sc["ward_hit"]["median"]["rps"], sc["ward_miss_es256"]["median"]["rps"]
        capacity = 1.0 / ((every - 1) / every / hit + 1 / every / miss)
    rate = max(1000, math.floor(capacity * 0.5 / 1000) * 1000)
    fresh_needed = int(rate * (duration + warmup) / every * 1.1) + 1000
    max_ttl = "2s"
    life = int(duration + warmup + 300)
    log(f"tail: {duration:.0f}s open-loop at {rate} Check/s, 1 in {every} with a fresh ES256 "
        f"token, 1000 hot tokens, cache.max_ttl {max_ttl}, tokens live {life}s")
    hot = token_pool(bed, "ES256", 1000, life, "tailhot-", reusable=False)
    fresh = token_pool(bed, "ES256", fresh_needed, life, "tailfresh-", reusable=False)
    return measure(bed, "tail", lambda: tail_once(bed, rate, duration, warmup, every, max_ttl,
                                                  hot, fresh), attempts=2)


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


# ------------------------------------------------------------------ report

def machine_info() -> dict:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = f"{kb / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    osname = ""
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    osname = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass

    def cmd(argv):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10, cwd=ROOT)
            return (r.stdout + r.stderr).strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    commit = cmd(["git", "rev-parse", "--short", "HEAD"])
    dirty = cmd(["git", "status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock"])
    envoy = re.search(r"version: \S+?/([\d.]+)/", cmd([find_envoy(), "--version"]))
    h2 = re.search(r"nghttp2/([\d.]+)", cmd(["h2load", "--version"]))
    return {"nproc": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
            "memory": mem, "os": osname, "ward_commit": commit + ("+dirty" if dirty else ""),
            "rustc": cmd(["rustc", "--version"]), "envoy": envoy.group(1) if envoy else "",
            "h2load": h2.group(1) if h2 else "",
            "nginx": cmd(["nginx", "-v"]).replace("nginx version: ", "")}


def compute_targets(res: dict) -> list[dict]:
    vals: dict[str, Optional[float]] = {}
    d = res.get("direct")
    if d:
        hit = d["scenarios"].get("ward_hit")
        if hit:
            vals["hit_vs_noop_rps"] = hit["rps_ratio"]
            vals["hit_vs_noop_cpu"] = hit.get("cpu_ratio")
        for key, name in (("session_hit_vs_noop_rps", "ward_session_hit"),
                          ("apikey_hit_vs_noop_rps", "ward_apikey_hit"),
                          ("session_miss_vs_noop_rps", "ward_session_miss")):
            if name in d["scenarios"]:
                vals[key] = d["scenarios"][name]["rps_ratio"]
        routes = d["scenarios"].get("ward_hit_10k_routes")
        if routes and hit and hit["rps_ratio"]:
            vals["routes_10k_vs_hit_rps"] = routes["rps_ratio"] / hit["rps_ratio"]
    e = res.get("envoy")
    if e:
        vals["envoy_ward_vs_noop"] = e["ratios"]["ward_tcp_vs_noop"]
        vals["envoy_ward_vs_jwt_authn"] = e["ratios"]["ward_tcp_vs_jwt_authn"]
        vals["envoy_added_p99_ms"] = e["scenarios"]["envoy_ward_tcp"]["latency"]["added_p99_ms"]
    m = res.get("memory")
    if m:
        vals["idle_rss_mb"] = m["idle_rss_kb"] / 1024
    t = res.get("tail")
    if t:
        vals["tail_p999_over_p50"] = t["p999_over_p50"]
    out = []
    for key, desc, op, limit in TARGETS:
        v = vals.get(key)
        ok = None if v is None else (v >= limit if op == ">=" else v <= limit)
        out.append({"key": key, "target": desc, "op": op, "limit": limit, "value": v, "met": ok})
    return out


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
                  "| Check/s | p50 ms | p99 ms | p99.9 ms | p99.9 / p50 | max ms | longest gap ms | ward CPU |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|",
                  f"| {t['rps']:,.0f} | {t['p50_us'] / 1000:.3f} | {t['p99_us'] / 1000:.3f} | "
                  f"{t['p999_us'] / 1000:.3f} | {t['p999_over_p50']:.1f} | {t['max_us'] / 1000:.1f} | "
                  f"{t['longest_gap_ms']:.1f} | {t['ward_cpu_util'] * 100:.0f}% |"]
        fl = t.get("fresh_latency_us")
        if fl:
            lines += ["", f"Requests with a fresh token alone: p50 {fl['p50'] / 1000:.3f} ms, "
                      f"p99 {fl['p99'] / 1000:.3f} ms, max {fl['max'] / 1000:.1f} ms. "
                      "Slowest request in each second (ms): "
                      + ", ".join(f"{v:.1f}" for v in t.get("per_second_max_ms", [])) + "."]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ chart

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


# ------------------------------------------------------------------ main

BEGIN, END = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"


def publish(bed: Bed, md: str, svg: str) -> None:
    os.makedirs(os.path.join(ROOT, "docs", "bench"), exist_ok=True)
    with open(os.path.join(ROOT, "docs", "bench", "latest.svg"), "w") as f:
        f.write(svg)
    with open(os.path.join(ROOT, "docs", "bench", "latest.json"), "w") as f:
        json.dump(bed.results, f, indent=1)
    doc = os.path.join(ROOT, "docs", "benchmarks.md")
    if os.path.exists(doc):
        text = open(doc).read()
        if BEGIN in text and END in text:
            pre, rest = text.split(BEGIN, 1)
            _, post = rest.split(END, 1)
            with open(doc, "w") as f:
                f.write(pre + BEGIN + "\n" + md + END + post)
            log("published to docs/benchmarks.md and docs/bench/latest.svg")
            return
    log("docs/benchmarks.md has no results markers; wrote docs/bench/latest.svg only")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="shorter runs (~2 min)")
    ap.add_argument("--only", default="direct,envoy,memory,tail",
                    help="comma-separated phases to run (default: all)")
    ap.add_argument("--scenarios", default="", metavar="NAMES",
                    help="direct phase: only these comma-separated scenarios (and the no-op "
                         "baseline); the targets of the others read as not measured")
    ap.add_argument("--authz-cpu", default=SERVER_CPU, choices=[SERVER_CPU, LOAD_CPU],
                    help=f"CPU for the ext_authz server behind Envoy (default {SERVER_CPU}: "
                         "shared with Envoy, so its CPU costs proxy throughput)")
    ap.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                    help="first wait up to this long for other processes to leave the CPUs idle")
    ap.add_argument("--render", metavar="RESULTS_JSON",
                    help="only re-render results.md and chart.svg next to an existing results.json")
    ap.add_argument("--publish", action="store_true",
                    help="copy the chart and table into docs/ (docs/bench/latest.svg, docs/benchmarks.md)")
    args = ap.parse_args()
    if args.render:
        with open(args.render) as f:
            res = json.load(f)
        out = os.path.dirname(os.path.abspath(args.render))
        with open(os.path.join(out, "results.md"), "w") as f:
            f.write(render_markdown(res))
        with open(os.path.join(out, "chart.svg"), "w") as f:
            f.write(render_svg(res))
        log(f"rendered {out}/results.md and chart.svg")
        return 0
    phases = [p.strip() for p in args.only.split(",") if p.strip()]
    for p in phases:
        if p not in ("direct", "envoy", "memory", "tail"):
            ap.error(f"unknown phase {p}")
    for b in (WARD_BIN, NOOP_BIN, LOADGEN_BIN):
        if not os.path.exists(b):
            raise SystemExit(f"{b} missing: run scripts/bench.sh (it builds in release mode)")
    for tool in ("h2load", "taskset", "nginx"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            raise SystemExit(f"{tool} missing: run scripts/bench.sh (it installs it)")
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("needs at least 2 CPUs (server and load are pinned apart)")

    atexit.register(Proc.stop_all)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)

    bed = Bed(args)
    started = time.monotonic()
    res = bed.results
    res["started"] = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    res["quick"] = args.quick
    res["machine"] = machine_info()
    log(f"results in {os.path.relpath(bed.outdir, ROOT)}; {res['machine']['nproc']} CPUs, "
        f"{res['machine']['cpu_model']}")
    if args.wait_quiet > 0:
        busy = wait_quiet(args.wait_quiet)
        log(f"machine busy before start: {busy * 100:.0f}% of a CPU")
    timings = {}
    for p in phases:
        t = time.monotonic()
        if p == "direct":
            res["direct"] = phase_direct(bed)
        elif p == "envoy":
            res["envoy"] = phase_envoy(bed)
        elif p == "memory":
            res["memory"] = phase_memory(bed)
        elif p == "tail":
            res["tail"] = phase_tail(bed, res.get("direct"))
        timings[p] = time.monotonic() - t
        log(f"{p} done in {timings[p]:.0f}s")
    res["phase_s"] = timings
    res["wall_s"] = time.monotonic() - started
    res["targets"] = compute_targets(res)
    res["foreign_cpu"] = {"median": median(bed.foreign) if bed.foreign else 0.0,
                          "max": max(bed.foreign) if bed.foreign else 0.0}
    if res["foreign_cpu"]["max"] > 0.10:
        log(f"WARNING: other processes used up to {res['foreign_cpu']['max'] * 100:.0f}% of a CPU "
            f"during measurements (median {res['foreign_cpu']['median'] * 100:.0f}%): numbers are noisy")
    md = render_markdown(res)
    svg = render_svg(res)
    with open(os.path.join(bed.outdir, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    with open(os.path.join(bed.outdir, "results.md"), "w") as f:
        f.write(md)
    with open(os.path.join(bed.outdir, "chart.svg"), "w") as f:
        f.write(svg)
    latest = os.path.join(ROOT, "bench-results", "latest")
    try:
        if os.path.islink(latest) or os.path.exists(latest):
            os.remove(latest)
        os.symlink(os.path.basename(bed.outdir), latest)
    except OSError:
        pass
    shutil.rmtree(bed.tmp, ignore_errors=True)
    print()
    print(md)
    log(f"total {res['wall_s']:.0f}s; wrote {os.path.relpath(bed.outdir, ROOT)}/"
        f"{{results.json,results.md,chart.svg}}")
    if args.publish:
        publish(bed, md, svg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
