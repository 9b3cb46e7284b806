"""The fault run's fixed choices, in one place: where the binaries and
results go, the load's rate and mix, how long each fault lasts, the
windows the docs allow (docs/reliability.md) and the targets a run is
judged by. Every other module reads them from here."""

from __future__ import annotations

import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The wards' binary: release by default (scripts/faults.sh builds it);
# WARD_FAULTS_BIN picks another (the README's test command may reuse a
# dev-profile build, see docs/reliability.md).
WARD_BIN = os.environ.get("WARD_FAULTS_BIN") or os.path.join(ROOT, "target", "release", "ward")
RESULTS = os.path.join(ROOT, "faults-results")

ISSUER, AUDIENCE = "https://idp.test", "api"
HMAC_KID = "faults-hs256"
HMAC_SECRET = "faults-0123456789abcdef0123456789abcdef0123456789abcdef"
RSA_KID = "faults-rs256"
RSA_KEY = os.path.join(ROOT, "tests", "fixtures", "keys", "rsa.key")

# The load: open loop, a fixed rate whatever the answers. A slot of the
# mix is taken per request, in order; MUST_DENY slots cycle through the
# kinds of credential that must be denied.
RATE = 400  # requests per second through Envoy
MIX = (["hot_session"] * 5 + ["new_session"] * 4 + ["apikey"] * 3 + ["new_token"] * 4
       + ["deny"] * 4)
DENY_KINDS = ["revoked_session", "unknown_session", "expired_session", "revoked_apikey",
              "unknown_apikey", "expired_token", "revoked_token"]
STALE_EVERY = 5  # every 5th request goes to /stale/ (on_store_error: stale)
REQUEST_TIMEOUT = 2.0  # s, per request through Envoy (Envoy's ext_authz timeout is 0.5 s)
USER_IPS = 200  # distinct x-forwarded-for addresses of legitimate clients

# Faults.
OUTAGE_S = 3.0  # Redis stopped / down
SETTLE_S = 1.5  # load watched after a fault ends ("after")
REVOCATIONS = 20  # sessions revoked per revocation measurement (per fault)
REVOCATION_LIMIT_S = 2.0  # a revocation not seen by then is "missed"
BOGUS_ADDRESSES = 10_000
SILENT_CONNS = 2000
SILENT_HOLD_S = 15.0  # how long the silent connections are watched
DRAIN_DELAY = "2s"

# What the docs allow (docs/reliability.md). A revocation published while
# a ward's subscription is down is honoured when it resubscribes: the
# first retry is 100 ms after the loss, then the connect (at most
# store.redis.connect_timeout, 1 s): 1100 ms at most after a closed
# connection.
PUBSUB_GAP_MS = 1100.0

# Targets: (key, description, comparison, limit). A row names the ones it
# measures; report.py and the exit status read them from here.
TARGETS = {
    "wrong_allows": ("wrong allows", "==", 0),
    "recovery_ms": ("recovery after Redis returns (ms)", "<=", 100.0),
    "first_check": ("first check after a restart answered from Redis (both wards)", "==", 1),
    "revocation_p99_ms": ("revocation p99 on both wards (ms)", "<=", 10.0),
    "jwks_kept": ("tokens of a known JWKS key allowed while the endpoint fails", "==", 1),
    "silent_closed": ("silent connections closed", "==", 1),
    "drain_failed": ("failed requests during a rolling stop", "==", 0),
    "reload_failed": ("failed requests across 20 reloads of both wards", "==", 0),
    "soak_rss_growth": ("soak RSS growth once caches are full", "<=", 0.10),
    "soak_p99_ratio": ("soak p99 last 10 min / first 10 min", "<=", 1.5),
}
