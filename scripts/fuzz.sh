#!/usr/bin/env bash
# Runs ward's cargo-fuzz targets (fuzz/fuzz_targets/, harnesses in
# src/fuzzing/ and envoy-module/src/fuzzing.rs) for a while each, two
# at a time, and fails on any crash.
#
#   bash scripts/fuzz.sh                         # every target, 60 s each
#   bash scripts/fuzz.sh --seconds 600 jws path  # these two, 10 min each
#   FUZZ_JOBS=1 bash scripts/fuzz.sh ...         # one at a time
#
# Needs the nightly toolchain (`rustup toolchain install nightly`);
# installs cargo-fuzz when missing. Builds into fuzz/target (never the
# main target dir). Each target starts from its checked-in seeds
# (fuzz/seeds/<target>/) and regressions (fuzz/regressions/<target>/);
# what it finds goes to fuzz/corpus/<target>/ (gitignored), a crash to
# fuzz/artifacts/<target>/. Minimise a crash with
#   cargo +nightly fuzz tmin --sanitizer none <target> fuzz/artifacts/<target>/crash-...
# and commit it under fuzz/regressions/<target>/: `cargo test --test
# fuzz_corpora` (module_headers: `cargo test -p ward-envoy-module
# fuzzing`) replays it from then on.

set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TARGETS=(check_request jws path credentials formats config workload module_headers)
SECONDS_EACH=60
JOBS="${FUZZ_JOBS:-2}"

# Inputs longer than a real one only slow the search down.
max_len() {
    case "$1" in
        check_request) echo 4096 ;;  # a CheckRequest is typically 1-2 KiB
        jws) echo 2048 ;;
        path) echo 512 ;;
        credentials) echo 1024 ;;
        formats) echo 512 ;;
        config) echo 4096 ;;
        workload) echo 2048 ;;  # an XFCC element, or a certificate
        module_headers) echo 2048 ;;  # a request's header block
        *) die "unknown target $1" ;;
    esac
}

chosen=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) SECONDS_EACH="${2:?--seconds needs a number}"; shift 2 ;;
        --seconds=*) SECONDS_EACH="${1#*=}"; shift ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        -*) die "unknown option $1" ;;
        *) max_len "$1" >/dev/null; chosen+=("$1"); shift ;;
    esac
done
[[ "$SECONDS_EACH" =~ ^[0-9]+$ ]] || die "--seconds must be a whole number"
[ "${#chosen[@]}" -gt 0 ] || chosen=("${TARGETS[@]}")

rustup run nightly rustc --version >/dev/null 2>&1 \
    || die "the nightly toolchain is needed: rustup toolchain install nightly"
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    step "Installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# Pure Rust with `unsafe_code = "forbid"`: no sanitizer, but overflow
# checks and debug assertions (cargo-fuzz's default) stay on.
FUZZ_TARGET_DIR="$ROOT/fuzz/target"
step "Building fuzz targets (fuzz/target)"
build_only=()  # `cargo fuzz build` takes one target, or builds them all
[ "${#chosen[@]}" -eq 1 ] && build_only=("${chosen[0]}")
env -u CARGO_TARGET_DIR cargo +nightly fuzz build --sanitizer none \
    --target-dir "$FUZZ_TARGET_DIR" "${build_only[@]}"
BIN_DIR="$FUZZ_TARGET_DIR/x86_64-unknown-linux-gnu/release"

LOGS="$ROOT/fuzz/artifacts/logs"
mkdir -p "$LOGS"

# Runs one target; its exit status goes to logs/<target>.rc.
run_one() {
    local target="$1" status=0
    mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target" "fuzz/regressions/$target"
    "$BIN_DIR/$target" "fuzz/corpus/$target" "fuzz/seeds/$target" "fuzz/regressions/$target" \
        -max_total_time="$SECONDS_EACH" -max_len="$(max_len "$target")" \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$target/" >"$LOGS/$target.log" 2>&1 || status=$?
    echo "$status" >"$LOGS/$target.rc"
}

step "Fuzzing ${chosen[*]}: ${SECONDS_EACH}s each, $JOBS at a time"
rm -f "$LOGS"/*.rc
for target in "${chosen[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
    run_one "$target" &
done
wait

failed=()
printf '\n%-14s %12s %9s %8s %s\n' target executions exec/s corpus result
for target in "${chosen[@]}"; do
    status="$(cat "$LOGS/$target.rc" 2>/dev/null || echo missing)"
    log="$LOGS/$target.log"
    # A target that crashes at once prints no stats: `|| true` keeps going.
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1 || true)"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1 || true)"
    corpus="$(grep -o 'corp: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)"
    result=ok
    if [ "$status" != 0 ]; then
        result="CRASH (exit $status): see $log and fuzz/artifacts/$target/"
        failed+=("$target")
    fi
    printf '%-14s %12s %9s %8s %s\n' "$target" "${execs:-?}" "${rate:-?}" "${corpus:-?}" "$result"
done

if [ "${#failed[@]}" -gt 0 ]; then
    for target in "${failed[@]}"; do
        printf '\n--- %s ---\n' "$target"
        grep -A25 -m1 'panicked at\|ERROR: libFuzzer\|==ERROR' "$LOGS/$target.log" || tail -30 "$LOGS/$target.log"
    done
    die "crashes in: ${failed[*]}"
fi
step "No crash"
