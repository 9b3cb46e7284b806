"""What a run was taken on: CPU, memory, kernel, OS, ward's commit (dirty
or not) and the versions of rustc, Envoy, h2load and nginx, for the line
that heads the table and the chart."""

from __future__ import annotations

import os
import platform
import re
import subprocess

from bench.settings import CHECKOUT_WARD_BIN, ROOT, find_envoy


def machine_info(ward_bin: str) -> dict:
    """`ward_commit` is this checkout's commit when `ward_bin` is its own
    release build, else the binary's path (--ward-bin names another build)."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = f"{kb / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    osname = ""
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    osname = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass

    def cmd(argv):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10, cwd=ROOT)
            return (r.stdout + r.stderr).strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    if os.path.realpath(ward_bin) == os.path.realpath(CHECKOUT_WARD_BIN):
        commit = cmd(["git", "rev-parse", "--short", "HEAD"])
        dirty = cmd(["git", "status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock"])
    else:
        commit, dirty = os.path.abspath(ward_bin), ""
    envoy = re.search(r"version: \S+?/([\d.]+)/", cmd([find_envoy(), "--version"]))
    h2 = re.search(r"nghttp2/([\d.]+)", cmd(["h2load", "--version"]))
    return {"nproc": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
            "memory": mem, "os": osname, "ward_commit": commit + ("+dirty" if dirty else ""),
            "rustc": cmd(["rustc", "--version"]), "envoy": envoy.group(1) if envoy else "",
            "h2load": h2.group(1) if h2 else "",
            "nginx": cmd(["nginx", "-v"]).replace("nginx version: ", "")}
