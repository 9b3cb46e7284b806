"""The processes in front of the store: nginx (echoing the identity ward
gave it, so an allow without the right identity is seen), two wards
sharing the store, and Envoy, whose ext_authz cluster holds both wards
with a gRPC health check (so a draining ward is taken out) and which
appends the peer to x-forwarded-for (ward trusts 2 hops). ward, nginx and
Envoy are bench's (scripts/bench/bed.py), on fixed ports for the wards so
that a restarted ward is where Envoy expects it. Also the run's folders."""

from __future__ import annotations

import datetime
import os
import signal
import time

from bench.bed import Envoy, Nginx, Ward
from bench.measure import rss_kb
from bench.procs import free_port, http_get, log
from bench.settings import find_envoy
from faults import settings as S
from faults.redis_nodes import kill


class Run:
    """One run's folders and names (what bench's servers expect of a bed)."""

    def __init__(self, quick: bool):
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.outdir = os.path.join(S.RESULTS, stamp + ("-quick" if quick else ""))
        self.tmp = os.path.join(self.outdir, "tmp")
        self.logs = os.path.join(self.outdir, "logs")
        for d in (self.tmp, self.logs):
            os.makedirs(d, exist_ok=True)
        self.envoy_bin = find_envoy()
        self.counter = 0

    def name(self, base: str) -> str:
        self.counter += 1
        return f"{self.counter:03d}-{base}"


def ward_extra(store: dict, jwks_url: str) -> dict:
    """ward's config beyond bench's defaults (JSON is YAML)."""
    return {
        "runtime": {"worker_threads": 1, "drain_delay": S.DRAIN_DELAY, "shutdown_grace": "5s"},
        "log": {"format": "text", "level": "warn"},
        "jwt": {"issuers": [S.ISSUER], "audiences": [S.AUDIENCE],
                "keys": [{"kid": S.HMAC_KID, "alg": "HS256", "secret": {"value": S.HMAC_SECRET}}],
                "jwks": [{"url": jwks_url, "refresh_interval": "1s",
                          "min_refetch_interval": "1s", "timeout": "1s"}],
                "revocation": {"check_jti": True}},
        "store": {"redis": store, "stale_if_error": "60s"},
        "sessions": {"fingerprint": {"trusted_hops": 2}},
        "policies": {"stale": {"on_store_error": "stale"}},
        "routes": [{"name": "stale", "prefix": "/stale", "policy": "stale"},
                   {"name": "api", "prefix": "/", "policy": "required"}],
    }


class Stack:
    def __init__(self, run: Run, store: dict, jwks_url: str):
        self.run, self.store, self.jwks_url = run, store, jwks_url
        self.nginx = Nginx(run, None, body='"$http_x_user_id\\n"')
        self.ports = [(free_port(), free_port()) for _ in range(2)]
        self.wards: list = [None, None]
        for i in range(2):
            self.start_ward(i)
        self.envoy = Envoy(run, None, {"mode": "ext_authz", "upstream_port": self.nginx.port,
                                       "authz_port": self.ports[0][0]}, patch=self.patch)
        self.wait_healthy([0, 1])

    def patch(self, config: dict) -> None:
        """Both wards in the authz cluster, health checked; x-forwarded-for appended."""
        cluster = next(c for c in config["static_resources"]["clusters"] if c["name"] == "authz")
        cluster["load_assignment"]["endpoints"][0]["lb_endpoints"] = [
            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1",
                                                         "port_value": g}}}}
            for g, _ in self.ports]
        cluster["health_checks"] = [{"timeout": "0.2s", "interval": "0.2s",
                                     "unhealthy_threshold": 1, "healthy_threshold": 1,
                                     "grpc_health_check": {}}]
        hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        hcm["typed_config"]["use_remote_address"] = True

    def start_ward(self, i: int) -> None:
        self.wards[i] = Ward(self.run, None, cache={"max_entries": 100000, "max_ttl": "120s"},
                             extra=ward_extra(self.store, self.jwks_url), ports=self.ports[i],
                             binary=S.WARD_BIN)

    def stop_ward(self, i: int, sig: int = signal.SIGTERM) -> None:
        kill(self.wards[i].proc, sig)

    def restart_wards(self, store: dict) -> None:
        """Both wards again, with another store (a new Redis deployment)."""
        self.store = store
        for i in range(2):
            self.wards[i].stop()
            self.start_ward(i)
        self.wait_healthy([0, 1])

    def healthy(self) -> list[int]:
        status, text = http_get(self.envoy.admin_port, "/clusters")
        out = []
        for i, (g, _) in enumerate(self.ports):
            key = f"authz::127.0.0.1:{g}::health_flags::healthy"
            if key in text:
                out.append(i)
        return out

    def wait_healthy(self, which: list[int], limit: float = 15.0) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if all(i in self.healthy() for i in which):
                return
            time.sleep(0.05)
        raise RuntimeError(f"Envoy does not see wards {which} healthy after {limit}s")

    def rss_mb(self) -> list[float]:
        out = []
        for w in self.wards:
            try:
                out.append(rss_kb(w.pid) / 1024)
            except OSError:
                out.append(float("nan"))
        return out

    def metric(self, i: int, prefix: str) -> float:
        """Sum of ward i's metric series starting with `prefix`."""
        return sum(v for k, v in self.wards[i].metrics().items() if k.startswith(prefix))

    def stop(self) -> None:
        for p in (self.envoy, *self.wards, self.nginx):
            try:
                p.stop()
            except Exception:  # noqa: BLE001 - best effort at the end
                pass
        log("stack stopped")
