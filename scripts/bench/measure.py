"""How a number is read: a process's CPU and RSS from /proc, how busy the
rest of the machine was meanwhile (a shared VM's neighbours skew results),
the retry of a measurement taken while it was busy, h2load's report, and
the median every table shows."""

from __future__ import annotations

import os
import re
import resource
import statistics
import time
from typing import TYPE_CHECKING, Callable

from bench.procs import log
from bench.settings import MAX_FOREIGN

if TYPE_CHECKING:
    from bench.bed import Bed

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process (all its threads), in clock ticks."""
    return sum(cpu_split(pid))


def cpu_split(pid: int) -> tuple[int, int]:
    """(utime, stime) of a process (all its threads), in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def thread_ticks(pid: int, name: str) -> int:
    """utime + stime of a process's threads called `name`, in clock ticks
    (0 if it has none)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if f.read().strip() != name:
                    continue
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:  # the thread ended meanwhile
            continue
    return total


def busy_ticks() -> int:
    """CPU ticks the whole machine spent busy (all CPUs)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal
    return v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)


def children_ticks() -> float:
    """CPU ticks of this script's finished children (the load tools)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r.ru_utime + r.ru_stime) * CLK_TCK


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Foreign:
    """How busy the machine was with processes that are not part of the run
    (another build, say): CPU-seconds per second, over one measurement."""

    def __init__(self, own_pids: list[int]):
        self.pids = own_pids
        self.t0 = time.monotonic()
        self.busy0 = busy_ticks()
        self.own0 = sum(cpu_ticks(p) for p in own_pids) + children_ticks()

    def done(self) -> float:
        own = sum(cpu_ticks(p) for p in self.pids) + children_ticks() - self.own0
        busy = busy_ticks() - self.busy0
        return max(0.0, (busy - own) / CLK_TCK / max(time.monotonic() - self.t0, 1e-9))


def wait_quiet(limit: float) -> float:
    """Waits up to `limit` s for the machine to be idle; returns the last
    reading of busy CPUs (CPU-seconds per second)."""
    deadline = time.monotonic() + limit
    while True:
        b0, t0 = busy_ticks(), time.monotonic()
        time.sleep(1.0)
        busy = (busy_ticks() - b0) / CLK_TCK / (time.monotonic() - t0)
        if busy < 0.1 or time.monotonic() >= deadline:
            return busy
        log(f"  machine busy ({busy * 100:.0f}% of a CPU used by other processes); waiting")


def measure(bed: "Bed", what: str, run: Callable[[], dict], attempts: int = 3) -> dict:
    """Runs one measurement; if other processes were busy meanwhile, runs
    it again (up to `attempts` times in all, within a retry budget for the
    whole bench) and keeps the quietest attempt."""
    best = None
    for attempt in range(attempts):
        r = run()
        if best is None or r["foreign_cpu"] < best["foreign_cpu"]:
            best = r
        if r["foreign_cpu"] <= MAX_FOREIGN or bed.retries_left <= 0 or attempt == attempts - 1:
            break
        bed.retries_left -= 1
        log(f"  {what}: other processes used {r['foreign_cpu'] * 100:.0f}% of a CPU meanwhile; "
            f"measuring again")
    bed.foreign.append(best["foreign_cpu"])
    return best


def median(values: list[float]) -> float:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def ms(seconds: float) -> str:
    """A duration for h2load, which takes no fractional seconds."""
    return f"{int(round(seconds * 1000))}ms"


def parse_h2load(out: str) -> dict:
    m = re.search(r"finished in ([\d.]+)s, ([\d.]+) req/s", out)
    req = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                    r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if not (m and req and codes):
        raise RuntimeError(f"cannot parse h2load output:\n{out[-2000:]}")
    return {"seconds": float(m.group(1)), "rps": float(m.group(2)),
            "done": int(req.group(3)), "succeeded": int(req.group(4)),
            "failed": int(req.group(5)), "errored": int(req.group(6)),
            "2xx": int(codes.group(1)), "non2xx": sum(int(codes.group(i)) for i in (2, 3, 4))}
