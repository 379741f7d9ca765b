"""Run a child process under a device profile's limits: a CPU quota and a memory budget that fails the run.

* CPU: a cgroup v1 ``cpu`` controller (``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``, weight ``cpu.shares``) or
  cgroup v2 ``cpu.max`` / ``cpu.weight`` where one is writable; else a duty-cycle throttler that stops and continues the child (SIGSTOP/SIGCONT) so it
  runs ``quota / min(threads, host cores)`` of each 50 ms period (coarser: it also pauses the child's I/O waits).
* memory: a watchdog thread samples the child's resident set (``/proc/PID/status``: VmRSS, with RssAnon and
  RssFile) every 10 ms and kills the child the first time it exceeds the budget; :func:`run_limited` then raises
  :class:`MemoryBudgetError`. RLIMIT_AS is not used: it limits address space, which mmap'd model files and
  thread stacks inflate far beyond what is resident.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nim4asr_edge.errors import Nim4AsrError

__all__ = ["CpuLimit", "LimitedRun", "MemoryBudgetError", "run_limited"]

CGROUP_V1_CPU = Path("/sys/fs/cgroup/cpu")
CGROUP_V2 = Path("/sys/fs/cgroup")
PERIOD_US = 100_000  # cgroup CFS period
DUTY_PERIOD_S = 0.05  # duty-cycle throttler period
SAMPLE_S = 0.01  # RSS watchdog period


class MemoryBudgetError(Nim4AsrError):
    """A profiled run went over its memory budget (the child was killed)."""


@dataclass(frozen=True)
class CpuLimit:
    cores: float  # host cores the child may use in total (e.g. 0.6); >= host cores means no throttling
    threads: int  # threads the workload runs (for the duty-cycle fallback)
    shares: int = 0  # cgroup CPU weight (v1 cpu.shares; 1024 = one ordinary process); 0 = leave the default.
    # A high weight keeps other load on the host from taking the quota: the phone's cores are the app's own.


@dataclass
class LimitedRun:
    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    cpu_s: float  # user + system CPU seconds of the child (wait4)
    peak_rss_mb: float  # highest sampled VmRSS
    peak_rss_anon_mb: float  # RssAnon at the highest sample
    peak_rss_file_mb: float  # RssFile (mmap'd model files, libraries) at the highest sample
    # the kernel's peak resident set of the child since its exec (VmHWM, last sampled): peaks between samples too.
    # Not wait4's ru_maxrss, which starts from the parent's resident set at fork (a large test runner's, say).
    hwm_mb: float
    cpu_method: str  # "cgroup-v1", "cgroup-v2", "duty-cycle" or "none"
    rss_trace: list[tuple[float, float]] = field(default_factory=list)  # (seconds, MB) every ~100 ms


def _status_mb(pid: int) -> tuple[float, float, float, float] | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    vals = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            vals[key] = int(rest.split()[0]) / 1024
    if "VmRSS" not in vals:
        return None
    return vals["VmRSS"], vals.get("RssAnon", 0.0), vals.get("RssFile", 0.0), vals.get("VmHWM", vals["VmRSS"])


def _make_cgroup(cores: float, shares: int) -> tuple[str, Path] | None:
    """A new CPU cgroup limited to ``cores`` (v1 or v2) with weight ``shares``, or None when neither is writable."""
    name = f"nim4asr-mobile-{os.getpid()}-{time.monotonic_ns()}"
    quota = max(int(cores * PERIOD_US), 1000)
    try:
        if (CGROUP_V1_CPU / "cpu.cfs_quota_us").exists():
            cg = CGROUP_V1_CPU / name
            cg.mkdir()
            (cg / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (cg / "cpu.cfs_quota_us").write_text(str(quota))
            if shares:
                (cg / "cpu.shares").write_text(str(shares))
            return "cgroup-v1", cg
        if (CGROUP_V2 / "cgroup.controllers").exists() and "cpu" in (CGROUP_V2 / "cgroup.subtree_control").read_text():
            cg = CGROUP_V2 / name
            cg.mkdir()
            (cg / "cpu.max").write_text(f"{quota} {PERIOD_US}")
            if shares:  # v2 weight 1..10000, 100 = default (v1 1024)
                (cg / "cpu.weight").write_text(str(max(1, min(10000, shares * 100 // 1024))))
            return "cgroup-v2", cg
    except OSError:
        return None
    return None


def _duty_cycle(pid: int, share: float, stop: threading.Event) -> None:
    run_s, pause_s = DUTY_PERIOD_S * share, DUTY_PERIOD_S * (1 - share)
    while not stop.is_set():
        time.sleep(run_s)
        try:
            os.kill(pid, signal.SIGSTOP)
            time.sleep(pause_s)
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            return


def run_limited(cmd: Sequence[str], budget_mb: float, cpu: CpuLimit | None = None, timeout_s: float = 3600,
                env: dict[str, str] | None = None, force_duty_cycle: bool = False) -> LimitedRun:
    """Run ``cmd`` with a CPU quota and a memory budget; raise :class:`MemoryBudgetError` when its resident set
    goes over ``budget_mb`` (the child is killed at once), ``Nim4AsrError`` on timeout."""
    host = os.cpu_count() or 1
    throttled = cpu is not None and cpu.cores < host
    wanted = cpu is not None and (throttled or cpu.shares > 0) and not force_duty_cycle
    cgroup = _make_cgroup(min(cpu.cores, host), cpu.shares) if wanted else None

    t0 = time.perf_counter()
    proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if cgroup is not None:  # moved at once, while it is still starting Python: every thread it starts inherits it
        (cgroup[1] / "cgroup.procs").write_text(str(proc.pid))
    method = "none"
    stop = threading.Event()
    if cgroup is not None:
        method = cgroup[0]
    elif throttled:  # no writable cgroup (or forced): weight cannot be raised either
        method = "duty-cycle"
        share = min(1.0, cpu.cores / max(1, min(cpu.threads, host)))
        threading.Thread(target=_duty_cycle, args=(proc.pid, share, stop), daemon=True).start()
    peak = [0.0, 0.0, 0.0]
    hwm = [0.0]  # the kernel's peak resident set of the child's own memory (VmHWM), peaks between samples too
    trace: list[tuple[float, float]] = []
    over: list[float] = []

    def watch() -> None:
        last = -1.0
        while not stop.is_set():
            vals = _status_mb(proc.pid)
            if vals is None:
                return
            now = time.perf_counter() - t0
            hwm[0] = max(hwm[0], vals[3])
            if vals[0] > peak[0]:
                peak[:] = vals[:3]
            if now - last >= 0.1:
                trace.append((round(now, 2), round(vals[0], 1)))
                last = now
            if max(vals[0], vals[3]) > budget_mb:
                over.append(max(vals[0], vals[3]))
                os.kill(proc.pid, signal.SIGCONT)
                proc.kill()
                return
            time.sleep(SAMPLE_S)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out: list[str] = []
    err: list[str] = []
    readers = [threading.Thread(target=lambda s, acc: acc.append(s.read()), args=(s, acc), daemon=True)
               for s, acc in ((proc.stdout, out), (proc.stderr, err))]
    for r in readers:
        r.start()
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                _, status, usage = os.wait4(proc.pid, 0)
                raise Nim4AsrError(f"profiled run did not finish in {timeout_s:.0f} s: {' '.join(cmd[:4])} ...")
            time.sleep(0.02)
    finally:
        stop.set()
        watcher.join()
        for r in readers:
            r.join(timeout=5)
        if cgroup is not None:
            try:
                cgroup[1].rmdir()
            except OSError:
                pass
    proc.returncode = os.waitstatus_to_exitcode(status)
    if over:
        raise MemoryBudgetError(
            f"over the memory budget: resident set {over[0]:.0f} MB > {budget_mb:.0f} MB; the run was killed "
            "(use a smaller quantisation or a larger profile)")
    return LimitedRun(
        returncode=proc.returncode, stdout="".join(out), stderr="".join(err), wall_s=time.perf_counter() - t0,
        cpu_s=usage.ru_utime + usage.ru_stime, peak_rss_mb=round(peak[0], 1), peak_rss_anon_mb=round(peak[1], 1),
        peak_rss_file_mb=round(peak[2], 1), hwm_mb=round(hwm[0], 1), cpu_method=method,
        rss_trace=trace)
