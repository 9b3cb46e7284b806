"""Child processes: servers started in their own process group (pinned to a
CPU, logging to a file, killed at exit even on Ctrl-C or failure), load
tools run to completion with a bound, and the readiness probes in between.
Also the run's log line, which every module prints through."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from typing import Callable, Optional

from bench.settings import ROOT


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what: str, probe: Callable[[], bool], limit: float = 15.0,
               proc: Optional["Proc"] = None) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc is not None and proc.popen.poll() is not None:
            raise RuntimeError(f"{what}: exited with {proc.popen.returncode}\n{proc.tail()}")
        try:
            if probe():
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"{what}: not ready after {limit}s" + (f"\n{proc.tail()}" if proc else ""))


def tcp_open(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, ""


class Proc:
    """A child process in its own process group, killed at exit."""

    running: list["Proc"] = []

    def __init__(self, name: str, argv: list[str], cpu: Optional[str], logdir: str,
                 cwd: str = ROOT, env: Optional[dict] = None):
        self.name = name
        self.logpath = os.path.join(logdir, f"{name}.log")
        self.logfile = open(self.logpath, "ab")
        if cpu is not None:
            argv = ["taskset", "-c", cpu] + argv
        env = dict(os.environ, NO_COLOR="1", **(env or {}))
        self.popen = subprocess.Popen(argv, stdout=self.logfile, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, cwd=cwd, env=env,
                                      start_new_session=True)
        self.pid = self.popen.pid  # taskset execs: same pid
        Proc.running.append(self)

    def tail(self, n: int = 30) -> str:
        try:
            with open(self.logpath, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.popen.wait(timeout=5)
        self.logfile.close()
        if self in Proc.running:
            Proc.running.remove(self)

    @classmethod
    def stop_all(cls) -> None:
        for p in list(cls.running):
            try:
                p.stop()
            except Exception:  # noqa: BLE001 - best effort at exit
                pass


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)


def run_tool(argv: list[str], cpu: Optional[str], timeout: float, what: str) -> str:
    """Runs a load tool to completion (bounded), returns its stdout."""
    if cpu is not None:
        argv = ["taskset", "-c", cpu] + argv
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if r.returncode != 0:
        raise RuntimeError(f"{what} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return r.stdout
