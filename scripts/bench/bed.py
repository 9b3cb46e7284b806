"""The bed: one run's shared state (output folders, results, retry budget,
the Redis its scenarios share) and the servers a scenario starts: ward,
the no-op Check server, nginx, Envoy and Redis. Each starts fresh on free
loopback ports, pinned to a CPU, and is ready when its constructor returns;
`stop()` ends it (and Proc ends any left at exit)."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Callable, Optional

from bench.credentials import new_api_key, random_base62, resp
from bench.envoy_bootstrap import envoy_config
from bench.procs import Proc, free_port, http_get, log, tcp_open, wait_until
from bench.settings import (HMAC_SECRET, LOAD_CPU, MODULE_FILE, NOOP_BIN, ROOT, find_envoy,
                            module_file)


class Bed:
    """Shared state of one benchmark run."""

    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        # The tail phase's mix and rate (0: estimated from the direct phase).
        self.tail_fresh_every = getattr(args, "tail_fresh_every", 20)
        self.tail_rps = getattr(args, "tail_rps", 0)
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
        self.ward_bin = args.ward_bin
        self.baseline_bin = args.baseline_bin  # "" unless two builds are compared
        # Likewise for the Envoy module (envoy phase): the directory Envoy
        # searches for the baseline's libward_envoy.so, "" without one.
        self.baseline_module = getattr(args, "baseline_module", "")
        self.baseline_module_dir = (module_search_dir(self.baseline_module, self.tmp)
                                    if self.baseline_module else "")
        # The retry budget grows with the runs: a baseline doubles ward's.
        self.retries_left = ((6 if args.quick else 16)
                             * (2 if self.baseline_bin or self.baseline_module else 1))
        self.redis: Optional[Redis] = None  # started by the first scenario that needs it
        self.introspection: Optional[str] = None  # likewise, the responder's URL
        # The direct phase's run lengths (s), set when it starts; the pools
        # of tokens sent once are sized from them.
        self.direct_warmup = self.direct_duration = self.direct_window = 0.0
        self.jwks = ""  # the public JWKS for Envoy's jwt_authn, set by the envoy phase

    def name(self, base: str) -> str:
        self.counter += 1
        return f"{self.counter:03d}-{base}"

    def ensure_redis(self) -> "Redis":
        """The run's Redis, started on first use (on the load CPU)."""
        if self.redis is None:
            self.redis = Redis(self, LOAD_CPU)
        return self.redis

    def ensure_introspection(self) -> str:
        """The run's introspection endpoint (a tiny loopback responder,
        `introspection_responder.py`, on the load CPU), started on first
        use; its URL."""
        if self.introspection is None:
            port = free_port()
            script = os.path.join(os.path.dirname(__file__), "introspection_responder.py")
            proc = Proc(self.name("introspection"), [sys.executable, script, str(port)],
                        LOAD_CPU, self.logs)
            wait_until("introspection responder", lambda: tcp_open(port), proc=proc)
            self.introspection = f"http://127.0.0.1:{port}/introspect"
        return self.introspection


WARD_KEYS = [
    {"kid": "bench-rs256", "alg": "RS256", "pem_file": "tests/fixtures/keys/rsa.pub"},
    {"kid": "bench-es256", "alg": "ES256", "pem_file": "tests/fixtures/keys/ec256.pub"},
    {"kid": "bench-hs256", "alg": "HS256", "secret": {"value": HMAC_SECRET}},
]


def module_config(redis_url: Optional[str] = None) -> str:
    """ward's config for its Envoy module, as the filter config: the keys
    and caches `ward serve` gets in Ward below (no listen, runtime or log:
    Envoy listens and logs), and Redis as the store if given."""
    config: dict = {
        "jwt": {"issuers": ["https://idp.test"], "audiences": ["api"], "keys": WARD_KEYS},
        "cache": {"max_entries": 200000, "max_ttl": "300s", "store_max_entries": 400000},
    }
    if redis_url:
        config["store"] = {"redis": {"url": redis_url}}
    return json.dumps(config)  # JSON is YAML


def module_search_dir(path: str, tmp: str) -> str:
    """A directory where Envoy finds the module build `path` as
    libward_envoy.so (its own, or a link to it under `tmp`)."""
    so = os.path.abspath(module_file(path))
    if os.path.basename(so) == MODULE_FILE:
        return os.path.dirname(so)
    d = os.path.join(tmp, "baseline-module")
    os.makedirs(d, exist_ok=True)
    os.symlink(so, os.path.join(d, MODULE_FILE))
    return d


class Ward:
    """ward serving one config: the build under test (bed.ward_bin), or with
    `baseline` the build it is compared with (bed.baseline_bin, direct phase)."""

    def __init__(self, bed: Bed, cpu: Optional[str], cache: Optional[dict] = None,
                 unix: bool = False, extra: Optional[dict] = None, baseline: bool = False,
                 ports: Optional[tuple[int, int]] = None, binary: Optional[str] = None):
        # `ports` (gRPC, admin): fixed, for a ward restarted where Envoy
        # expects it (scripts/faults); otherwise free ones. `binary`: another
        # build of ward (scripts/faults may run a dev-profile one).
        self.grpc_port, self.admin_port = ports or (free_port(), free_port())
        name = bed.name("ward-baseline" if baseline else "ward")
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
        self.config_path = path  # scripts/faults rewrites it to reload
        binary = binary or (bed.baseline_bin if baseline else bed.ward_bin)
        self.proc = Proc(name, [binary, "serve", "--config", path], cpu, bed.logs)
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
    def __init__(self, bed: Bed, cpu: Optional[str], body: str = '"ok\\n"'):
        # `body`: what every request is answered, in nginx's syntax
        # (scripts/faults echoes the identity header: '"$http_x_user_id\\n"').
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
        location / {{ return 200 {body}; }}
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


class Envoy:
    def __init__(self, bed: Bed, cpu: Optional[str], config_args: dict,
                 patch: Optional[Callable[[dict], None]] = None,
                 env: Optional[dict] = None):
        # `patch` edits the bootstrap in place before Envoy starts
        # (scripts/faults: two wards, health checks, x-forwarded-for);
        # `env`: Envoy's environment (a dynamic module's search path).
        self.http_port, self.admin_port = free_port(), free_port()
        name = bed.name("envoy-" + config_args["mode"])
        config = envoy_config(http_port=self.http_port, admin_port=self.admin_port, **config_args)
        if patch:
            patch(config)
        path = os.path.join(bed.tmp, f"{name}.json")
        with open(path, "w") as f:
            json.dump(config, f, indent=1)
        self.proc = Proc(name, [bed.envoy_bin, "-c", path, "--concurrency", "1",
                                "--base-id", str(self.admin_port), "--log-level", "warning"],
                         cpu, bed.logs, env=env)
        self.pid = self.proc.pid
        wait_until("envoy /ready", lambda: http_get(self.admin_port, "/ready")[0] == 200,
                   proc=self.proc)

    def stop(self) -> None:
        self.proc.stop()


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
            key = new_api_key()
            digest = hashlib.sha256(key.encode()).hexdigest()
            key_id = "key_" + random_base62(16)
            self.pipe(resp("HSET", f"apikey:{digest}", "key_id", key_id, "user_id", "bench-bot",
                           "name", "bench") + resp("SET", f"apikey_id:{key_id}", digest),
                      "API key")
            self.api_key = key
        return self.api_key
