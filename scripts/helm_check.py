"""Structural checks behind scripts/helm-check.sh (run with .venv-k8s's
Python, which has PyYAML). Each failure names the file and what is wrong.

  helm_check.py split RENDERED OUTDIR
      Splits `helm template` output: OUTDIR/core.yaml (every core kind, for
      kubernetes-validate), OUTDIR/ward.yaml (ward's config), OUTDIR/envoy.yaml
      (gateway mode), OUTDIR/sidecar-pod.yaml (sidecar mode: the documented
      container spec put into a Pod). Checks what schemas cannot: hardened
      securityContexts, the config checksum annotation, probe paths, the
      ServiceMonitor's port, the sidecar socket path, and with
      gateway.module.enabled the module's way from the init container into
      Envoy's search path.
  helm_check.py checksum RENDERED_A RENDERED_B
      The pod template's checksum/config differs between two renders.
  helm_check.py istio DIR
      The Istio examples: provider shapes, explicit timeouts, CUSTOM action.
  helm_check.py dashboard FILE
      The Grafana dashboard is JSON with panels that all have PromQL targets.
"""

import json
import sys
from pathlib import Path

import yaml

CRD_KINDS = {"ServiceMonitor"}
WARD_IDENTITY_HEADERS = {
    "x-user-id", "x-user-email", "x-user-roles", "x-user-scopes", "x-auth-method", "x-api-key-id",
}


def fail(msg):
    print(f"helm_check: {msg}", file=sys.stderr)
    sys.exit(1)


def docs(path):
    return [d for d in yaml.safe_load_all(Path(path).read_text()) if d]


def check_container(where, c):
    sc = c.get("securityContext") or {}
    want = {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
    }
    for k, v in want.items():
        if sc.get(k) != v:
            fail(f"{where}: container {c['name']}: securityContext.{k} must be {v}")
    if sc.get("capabilities", {}).get("drop") != ["ALL"]:
        fail(f"{where}: container {c['name']}: capabilities must drop ALL")
    if sc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        fail(f"{where}: container {c['name']}: seccompProfile must be RuntimeDefault")
    if c["name"] == "ward":
        if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
            fail(f"{where}: ward's livenessProbe must GET /healthz")
        if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
            fail(f"{where}: ward's readinessProbe must GET /readyz")


def mount_of(container, volume):
    return next((m["mountPath"] for m in container.get("volumeMounts", []) if m["name"] == volume), None)


def check_module(where, spec):
    """gateway.module.enabled: the init container installs the module into
    the emptyDir that Envoy's search path names; no ward container."""
    names = [c["name"] for c in spec["containers"]]
    if names != ["envoy"]:
        fail(f"{where}: with the module the pod runs Envoy alone, not {names}")
    init = [c for c in spec["initContainers"] if c["name"] == "install-module"]
    if len(init) != 1:
        fail(f"{where}: no install-module init container")
    target = init[0]["args"][1] if init[0]["args"][:1] == ["install-module"] else None
    if target is None or mount_of(init[0], "ward-module") != target:
        fail(f"{where}: install-module must write into the ward-module volume it mounts")
    envoy = spec["containers"][0]
    env = {e["name"]: e.get("value") for e in envoy.get("env", [])}
    if env.get("ENVOY_DYNAMIC_MODULES_SEARCH_PATH") != mount_of(envoy, "ward-module"):
        fail(f"{where}: ENVOY_DYNAMIC_MODULES_SEARCH_PATH must be where Envoy mounts ward-module")
    if "emptyDir" not in next(v for v in spec["volumes"] if v["name"] == "ward-module"):
        fail(f"{where}: ward-module must be an emptyDir")


def split(rendered, outdir):
    out = Path(outdir)
    all_docs = docs(rendered)
    core, ward_cfg, envoy_cfg, sidecar = [], None, None, None
    services = [d for d in all_docs if d["kind"] == "Service"]
    for d in all_docs:
        kind, name = d["kind"], d["metadata"]["name"]
        if kind in CRD_KINDS:
            if kind == "ServiceMonitor":
                port = d["spec"]["endpoints"][0]["port"]
                names = {p["name"] for s in services for p in s["spec"]["ports"]}
                if port not in names:
                    fail(f"{rendered}: ServiceMonitor port {port} is not a Service port ({names})")
            continue
        core.append(d)
        if kind == "ConfigMap" and name.endswith("-config"):
            ward_cfg = d["data"]["ward.yaml"]
        if kind == "ConfigMap" and name.endswith("-envoy"):
            envoy_cfg = d["data"]["envoy.yaml"]
        if kind == "ConfigMap" and name.endswith("-sidecar"):
            sidecar = d["data"]
        if kind == "Deployment":
            pod = d["spec"]["template"]
            annotations = pod["metadata"].get("annotations") or {}
            # Either the pods roll on a config change, or ward reloads it in
            # place (rollOnConfigChange: false), and the pod says which.
            if "checksum/config" not in annotations and annotations.get("ward/config-reload") != "in-place":
                fail(f"{rendered}: Deployment has neither checksum/config nor ward/config-reload: in-place")
            psc = pod["spec"].get("securityContext", {})
            if psc.get("runAsNonRoot") is not True or psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
                fail(f"{rendered}: pod securityContext must be runAsNonRoot with seccomp RuntimeDefault")
            for c in pod["spec"]["containers"] + pod["spec"].get("initContainers", []):
                check_container(rendered, c)
            if pod["spec"].get("initContainers"):
                check_module(rendered, pod["spec"])
    if ward_cfg is None:
        fail(f"{rendered}: no ConfigMap *-config with ward.yaml")
    (out / "core.yaml").write_text(yaml.safe_dump_all(core))
    (out / "ward.yaml").write_text(ward_cfg)
    if envoy_cfg is not None:
        (out / "envoy.yaml").write_text(envoy_cfg)
    if sidecar is not None:
        container = yaml.safe_load(sidecar["container.yaml"])
        check_container(rendered + " (sidecar container.yaml)", container)
        socket = yaml.safe_load(ward_cfg)["listen"]["unix_socket"]
        cluster = yaml.safe_load(sidecar["envoy-cluster.yaml"])[0]
        pipe = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["pipe"]["path"]
        if pipe != socket:
            fail(f"{rendered}: sidecar Envoy cluster pipe {pipe} != ward's listen.unix_socket {socket}")
        example = yaml.safe_load(Path("envoy/sidecar-uds.yaml").read_text())
        example_ward = [c for c in example["static_resources"]["clusters"] if c["name"] == "ward"][0]
        if cluster != example_ward:
            fail(f"{rendered}: sidecar envoy-cluster.yaml differs from the ward cluster of "
                 "envoy/sidecar-uds.yaml (which envoy --mode validate checks)")
        mount = yaml.safe_load(sidecar["envoy-volume-mount.yaml"])
        envoy = {
            "name": "envoy", "image": "envoyproxy/envoy:distroless-v1.40.0",
            "volumeMounts": mount,
            "securityContext": container["securityContext"],
        }
        pod = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "team-app"},
            "spec": {
                "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "fsGroup": 65532,
                                    "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [envoy, container],
                "volumes": yaml.safe_load(sidecar["volumes.yaml"]),
            },
        }
        (out / "sidecar-pod.yaml").write_text(yaml.safe_dump(pod))


def checksum(a, b):
    def value(path):
        for d in docs(path):
            if d["kind"] == "Deployment":
                return d["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        fail(f"{path}: no Deployment")
    if value(a) == value(b):
        fail("checksum/config did not change when the config changed: pods would not roll")


def istio(directory):
    d = Path(directory)
    providers = {}
    for name in ["mesh-config.yaml", "mesh-config-http.yaml"]:
        mesh = yaml.safe_load((d / name).read_text())["meshConfig"]
        if mesh.get("pathNormalization", {}).get("normalization") != "DECODE_AND_MERGE_SLASHES":
            fail(f"{name}: meshConfig.pathNormalization.normalization must be DECODE_AND_MERGE_SLASHES")
        for p in mesh["extensionProviders"]:
            kinds = [k for k in p if k != "name"]
            if len(kinds) != 1 or kinds[0] not in ("envoyExtAuthzGrpc", "envoyExtAuthzHttp"):
                fail(f"{name}: provider {p['name']}: one envoyExtAuthzGrpc or envoyExtAuthzHttp")
            cfg = p[kinds[0]]
            for key in ("service", "port", "timeout"):
                if key not in cfg:
                    fail(f"{name}: provider {p['name']}: {key} is required (Istio's default timeout is 600s)")
            if not str(cfg["timeout"]).endswith("s") or float(str(cfg["timeout"])[:-1]) > 1:
                fail(f"{name}: provider {p['name']}: timeout {cfg['timeout']} must be at most 1s")
            if cfg.get("failOpen") is not False:
                fail(f"{name}: provider {p['name']}: failOpen must be false")
            if kinds[0] == "envoyExtAuthzHttp":
                if "pathPrefix" in cfg:
                    fail(f"{name}: ward reads the original path: no pathPrefix")
                missing = WARD_IDENTITY_HEADERS - set(cfg.get("headersToUpstreamOnAllow", []))
                if missing:
                    fail(f"{name}: headersToUpstreamOnAllow lacks {sorted(missing)}")
                for h in ["authorization", "cookie", "x-api-key", "x-session-id", "x-user-*", "x-auth-*"]:
                    if h not in cfg.get("includeRequestHeadersInCheck", []):
                        fail(f"{name}: includeRequestHeadersInCheck lacks {h}")
            providers[p["name"]] = kinds[0]
    # authorization-policy.yaml, and authorization-policy-workload.yaml
    # (workload identity: with a PeerAuthentication beside it).
    for path in sorted(d.glob("authorization-policy*.yaml")):
        name = path.name
        docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
        policies = [doc for doc in docs if doc.get("kind") == "AuthorizationPolicy"]
        if len(policies) != 1 or policies[0].get("apiVersion") != "security.istio.io/v1":
            fail(f"{name}: not one security.istio.io/v1 AuthorizationPolicy")
        spec = policies[0]["spec"]
        if spec.get("action") != "CUSTOM":
            fail(f"{name}: action must be CUSTOM")
        if spec.get("provider", {}).get("name") not in providers:
            fail(f"{name}: provider {spec.get('provider')} is not one of {sorted(providers)}")
        if not spec.get("rules"):
            fail(f"{name}: CUSTOM needs rules (no rules: nothing is sent to ward)")
        for doc in docs:
            if doc.get("kind") == "PeerAuthentication" and doc["spec"]["mtls"]["mode"] != "STRICT":
                fail(f"{name}: a PeerAuthentication here must require mTLS (STRICT)")


def dashboard(path):
    dash = json.loads(Path(path).read_text())
    if not dash.get("panels"):
        fail(f"{path}: no panels")
    for p in dash["panels"]:
        exprs = [t.get("expr", "") for t in p.get("targets", [])]
        if not exprs or not all("ward_" in e for e in exprs):
            fail(f"{path}: panel {p.get('title')!r} has a target without a ward_ metric")


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {"split": split, "checksum": checksum, "istio": istio, "dashboard": dashboard}[cmd](*args)
