#!/usr/bin/env bash
# Checks the Helm chart and the Kubernetes/Istio examples, offline:
#
#   bash scripts/helm-check.sh        (scripts/test.sh runs it)
#
# - helm lint --strict, for every mode;
# - helm template for the defaults and every helm/ward/ci/*.yaml, each render
#   validated by kubernetes-validate --strict against two Kubernetes minor
#   versions (K8S_VERSIONS), plus structural checks (scripts/helm_check.py);
# - `ward check-config` on every ward config the chart renders. The only
#   rewrite: the secrets mount paths (/var/run/secrets/ward/, and the
#   identity-token keys' /var/run/secrets/ward-identity/) point at a
#   temporary directory holding test secrets;
# - `envoy --mode validate` on the gateway mode's rendered Envoy config
#   (with gateway.module.enabled, the module built and loaded: the same
#   secrets rewrite applies to the ward config inline in it);
# - every helm/ward/ci/bad/*.yaml is rejected, with the message its
#   `# expect:` line names;
# - the Istio examples (envoy/istio/) and the Grafana dashboard, structurally.
# Installs Helm (.tools/helm), kubernetes-validate (.venv-k8s) and Envoy if
# missing.

set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

K8S_VERSIONS=(1.29 1.34)
CHART=helm/ward
SECRETS_MOUNT=/var/run/secrets/ward
IDENTITY_MOUNT=/var/run/secrets/ward-identity

[ -n "${WARD_HELM_BIN:-}" ] || install_helm
[ -n "${WARD_K8S_VALIDATE_BIN:-}" ] || install_kubernetes_validate
[ -n "${WARD_ENVOY_BIN:-}" ] || install_envoy
PY="$ROOT/.venv-k8s/bin/python"
helm() { "$WARD_HELM_BIN" "$@"; }

step "Building ward (for check-config) and the Envoy module (for gateway.module)"
cargo build --quiet --bin ward
cargo build --quiet -p ward-envoy-module
target_dir="$(cargo metadata --format-version 1 --no-deps | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
WARD="$target_dir/debug/ward"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
secrets="$work/secrets"
mkdir -p "$secrets"
printf '%s\n' "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" > "$secrets/hmac"
printf '%s\n' "redis-test-password" > "$secrets/redis-password"
printf '%s\n' "a-management-api-token-0123456789" > "$secrets/management-token"
# ci/introspection.yaml: ward's client secret at the identity provider.
printf '%s\n' "an-introspection-client-secret-0123456789" > "$secrets/introspection-secret"
# The management API's TLS (ci/management-mtls.yaml): the test certificates.
cp tests/fixtures/management/server.pem "$secrets/tls.crt"
cp tests/fixtures/management/server.key "$secrets/tls.key"
cp tests/fixtures/management/ca.pem "$secrets/ca.crt"
cp tests/fixtures/keys/rsa.pub "$secrets/jwt.pub"
# ci/identity-token.yaml's signing keys (P-256, PKCS#8).
mkdir -p "$secrets/identity"
cp tests/fixtures/keys/ec256.key "$secrets/identity/key-2026-11.pem"
cp tests/fixtures/keys/ec256.key "$secrets/identity/key-2026-12.pem"
export WARD_HMAC_OLD="an-older-hmac-secret-of-at-least-32-bytes!"

step "helm lint --strict (every mode)"
helm lint --strict "$CHART" >/dev/null
for values in "$CHART"/ci/*.yaml; do
    helm lint --strict "$CHART" -f "$values" >/dev/null || die "helm lint failed for $values"
done

renders=(default "$CHART"/ci/*.yaml)
manifests=()
for values in "${renders[@]}"; do
    name="$(basename "$values" .yaml)"
    step "helm template: $name"
    dir="$work/$name"
    mkdir -p "$dir"
    args=(template ward "$CHART" --namespace ward)
    [ "$values" = default ] || args+=(-f "$values")
    helm "${args[@]}" > "$dir/rendered.yaml"
    "$PY" scripts/helm_check.py split "$dir/rendered.yaml" "$dir"

    manifests+=("$dir/core.yaml")
    [ ! -f "$dir/sidecar-pod.yaml" ] || manifests+=("$dir/sidecar-pod.yaml")

    sed -e "s|$IDENTITY_MOUNT/|$secrets/identity/|g" -e "s|$SECRETS_MOUNT/|$secrets/|g" \
        "$dir/ward.yaml" > "$dir/ward-local.yaml"
    "$WARD" check-config "$dir/ward-local.yaml" >/dev/null \
        || { cat "$dir/ward.yaml"; "$WARD" check-config "$dir/ward-local.yaml"; die "$name: ward check-config failed"; }
    echo "ward check-config: ok"

    if [ -f "$dir/envoy.yaml" ]; then
        # With gateway.module.enabled, validation builds the module's filter
        # config for real: ward's config inline, reading the same secrets.
        sed "s|$SECRETS_MOUNT/|$secrets/|g" "$dir/envoy.yaml" > "$dir/envoy-local.yaml"
        ENVOY_DYNAMIC_MODULES_SEARCH_PATH="$target_dir/debug" \
            "$WARD_ENVOY_BIN" --mode validate -c "$dir/envoy-local.yaml" --log-level warning >/dev/null \
            || die "$name: the rendered Envoy config is not valid"
        echo "envoy --mode validate: ok"
    fi
done

step "kubernetes-validate --strict, Kubernetes ${K8S_VERSIONS[*]} (every render above)"
for version in "${K8S_VERSIONS[@]}"; do
    # One run per version over every file (it names the failing file).
    "$WARD_K8S_VALIDATE_BIN" --strict --quiet -k "$version" "${manifests[@]}" \
        || die "rendered manifests are not valid for Kubernetes $version"
done
echo "ok: ${#manifests[@]} files"

step "Config changes roll the pods (checksum/config)"
helm template ward "$CHART" > "$work/a.yaml"
helm template ward "$CHART" --set config.log.level=debug > "$work/b.yaml"
"$PY" scripts/helm_check.py checksum "$work/a.yaml" "$work/b.yaml"

step "Bad values are rejected with a clear message"
for values in "$CHART"/ci/bad/*.yaml; do
    expect="$(sed -n 's/^# expect: //p' "$values" | head -n 1)"
    [ -n "$expect" ] || die "$values has no '# expect:' line"
    if output="$(helm template ward "$CHART" -f "$values" 2>&1)"; then
        die "$values was accepted"
    fi
    grep -qF -- "$expect" <<<"$output" || die "$values: expected '$expect' in: $output"
    echo "rejected: $(basename "$values"): $expect"
done

step "Istio examples and the Grafana dashboard"
"$PY" scripts/helm_check.py istio envoy/istio
"$PY" scripts/helm_check.py dashboard "$CHART/dashboards/ward.json"
echo "ok"

step "Helm chart checks passed"
