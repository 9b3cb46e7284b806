"""ward's fault run: what an operator fears, injected on purpose and
measured (issue 19). Run it through scripts/faults.sh, which installs the
tools and the gRPC client venv (.venv-faults) and builds ward first.

    bash scripts/faults.sh --quick               # standalone Redis, a subset, < 90 s
    bash scripts/faults.sh --full                # every fault, then a 30 min soak
    bash scripts/faults.sh --full --soak-minutes 5 --publish
    bash scripts/faults.sh --full --soak-minutes 0 --only sentinel,cluster

It starts real processes on loopback: redis-server (standalone with an
append-only file; a master + replica watched by three Sentinels; a
Cluster of three masters with a replica each), two wards (release build)
sharing the store, a real Envoy whose ext_authz cluster holds both wards
(gRPC health checked), an nginx upstream that echoes the identity it was
given, and a JWKS server this script controls. A load process sends
steady open-loop traffic through Envoy: cached and new sessions, API keys,
new tokens, interleaved with credentials that must be denied (revoked,
unknown, expired). Each fault is injected while it runs; each row of the
table says what went wrong (wrong allows), what was answered during and
after, the p99 during, the time to recover, the revocation latency on
both wards afterwards and each ward's RSS before and after.

The exit status is 0 only when every fault had 0 wrong allows and every
target the run checks holds (settings.TARGETS).

Modules, one job each:
  settings     fixed choices: rates, durations, targets, documented windows
  resp         a small Redis client (standalone, Sentinel, Cluster) for writes
  redis_nodes  redis-server processes: standalone, Sentinel set, Cluster
  tokens       JWTs: HS256 and RS256 (pure Python), the JWKS document
  creds        the credentials: written to Redis, and which must be denied
  jwks_server  the JWKS endpoint, switchable to 500 / garbage / slow
  stack        nginx, two wards, Envoy: started, restarted, their config
  direct       gRPC Check straight to one ward (revocation polls, probes)
  load         the open-loop load process and its per-request records
  rows         records and marks -> one row of the table (the measurements)
  faults_store Redis faults: SIGSTOP, restart, pub/sub kill, failovers
  faults_edge  JWKS, many addresses, silent connections, drain, reload
  soak         the soak: churn, RSS and p99 per minute
  report       the markdown table, docs/reliability.md, results.json
"""
