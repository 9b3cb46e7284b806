"""The bed's fixed choices, in one place: where the binaries are, which CPU
each process gets, the load shapes, and how much foreign CPU makes a
measurement worth repeating. Every other module reads them from here, so a
change (another CPU layout, say) is made once."""

from __future__ import annotations

import glob
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RELEASE = os.environ.get("WARD_BENCH_RELEASE_DIR") or os.path.join(ROOT, "target", "release")
# The ward under test: this checkout's release build, or another build
# (WARD_BIN, --ward-bin). A second build to compare it with in the direct
# phase (WARD_BASELINE_BIN, --baseline-bin; see compare.py): none by default.
CHECKOUT_WARD_BIN = os.path.join(RELEASE, "ward")
WARD_BIN = os.environ.get("WARD_BIN") or CHECKOUT_WARD_BIN
BASELINE_BIN = os.environ.get("WARD_BASELINE_BIN") or ""
# Another build of ward's Envoy module to compare in the envoy phase
# (WARD_BASELINE_MODULE, --baseline-module: a libward_envoy.so, or the
# directory holding one; see compare.py): none by default.
BASELINE_MODULE = os.environ.get("WARD_BASELINE_MODULE") or ""
MODULE_FILE = "libward_envoy.so"  # Envoy loads `lib<name>.so`, name "ward_envoy"


def module_file(path: str) -> str:
    """A module build as named on the command line: the file, or the
    directory holding libward_envoy.so."""
    return os.path.join(path, MODULE_FILE) if os.path.isdir(path) else path


def module_problem(so: str) -> str:
    """Why Envoy could not load the module build `so`, or "" if it can.
    A build with the `fuzzing` feature (`cargo bench -p ward-envoy-module
    --features fuzzing` in the same target directory) writes a
    libward_envoy.so without Envoy's hooks under the same name."""
    if not os.path.isfile(so):
        return f"{so} missing: run scripts/bench.sh (it builds both modules)"
    nm = subprocess.run(["nm", "-D", "--defined-only", so], capture_output=True, text=True)
    if "envoy_dynamic_module_on_program_init" not in nm.stdout:
        return (f"{so} exports no Envoy hooks (a `--features fuzzing` build?): "
                "rebuild it with `cargo build --release -p ward-envoy-module`")
    return ""
# benches/tools/*.rs, built as Cargo examples (see Cargo.toml).
NOOP_BIN = os.path.join(RELEASE, "examples", "noop_authz")
# Envoy's module search paths: ward's module (`cargo build --release -p
# ward-envoy-module`, this checkout's) and the do-nothing module
# (benches/tools/noop_module.c, compiled by scripts/bench.sh).
MODULE_DIR = os.environ.get("WARD_BENCH_MODULE_DIR") or RELEASE
NOOP_MODULE_DIR = os.path.join(RELEASE, "examples")
LOADGEN_BIN = os.path.join(RELEASE, "examples", "loadgen")
CHECK_PATH = "/envoy.service.auth.v3.Authorization/Check"
HMAC_SECRET = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

# CPUs: the component under test gets CPU 0; everything that only makes or
# absorbs load (load generator, nginx) gets CPU 1. Through Envoy, ext_authz
# servers share CPU 0 with Envoy: a check's CPU then costs proxy
# throughput, exactly as Envoy's in-process jwt_authn filter does.
SERVER_CPU = "0"
LOAD_CPU = "1"

# Load shapes: the same for every scenario of a phase.
DIRECT_CONNS, DIRECT_DEPTH = 4, 32
ENVOY_CONNS, ENVOY_DEPTH = 16, 8

MAX_FOREIGN = 0.15  # other processes' CPU (in CPUs) above which a run is measured again


def find_envoy() -> str:
    env = os.environ.get("WARD_ENVOY_BIN")
    if env and os.path.isfile(env):
        return env
    for b in glob.glob(os.path.join(ROOT, ".venv-envoy/lib/python3*/site-packages/envoy/_bin/envoy")):
        if os.access(b, os.X_OK):
            return b
    raise SystemExit("Envoy not found: run scripts/bench.sh (it installs .venv-envoy)")
