"""CPU accounting for the serving benchmarks: CPU seconds by process group (proxy, replica, HAProxy, ...)
of a server's process tree, and of the load generator's child processes (wrk, hey)."""

from __future__ import annotations

import resource
from collections import defaultdict
from dataclasses import dataclass

import psutil

PROCESS_GROUPS = [
    ("proxy", "ray::ProxyActor"),
    ("replica", "ray::ServeReplica"),
    ("haproxy", "haproxy"),
    ("controller", "ray::ServeController"),
    ("raylet+gcs", "raylet"),
    ("raylet+gcs", "gcs_server"),
]
BUSY_REPLICA_CPU_S = 0.05  # a replica that used more CPU than this during a run served part of it

CpuByPid = dict[int, tuple[str, float]]


def _group(process: psutil.Process) -> str:
    try:
        text = " ".join(process.cmdline()) or process.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "other"
    return next((group for group, marker in PROCESS_GROUPS if marker in text), "other")


def cpu_by_group(root_pid: int) -> CpuByPid:
    """CPU seconds so far of every process in the tree under `root_pid`, with its group."""
    try:
        root = psutil.Process(root_pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return {}
    seen: CpuByPid = {}
    for process in processes:
        try:
            times = process.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        seen[process.pid] = (_group(process), times.user + times.system)
    return seen


def pids_in_group(root_pid: int, group: str) -> list[int]:
    return [pid for pid, (name, _) in cpu_by_group(root_pid).items() if name == group]


def _delta_ms(before: CpuByPid, after: CpuByPid) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for pid, (group, seconds) in after.items():
        totals[group] += (seconds - before.get(pid, (group, 0.0))[1]) * 1000
    return dict(totals)


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuUse:
    """CPU a run cost: ms per request by process group, the load generator's ms per request, busy replicas."""

    ms_per_request: dict[str, float]
    generator_ms_per_request: float
    busy_replicas: int


class CpuMeter:
    """Started before a run, `stop(requests)` after it: what the run cost the server's process tree
    (`root_pid`, None for a server outside this machine's view) and the generator's child processes."""

    def __init__(self, root_pid: int | None) -> None:
        self._root_pid = root_pid
        self._before = cpu_by_group(root_pid) if root_pid else {}
        self._generator_before = _children_cpu_s()

    def stop(self, requests: int) -> CpuUse:
        generator_ms = (_children_cpu_s() - self._generator_before) * 1000
        after = cpu_by_group(self._root_pid) if self._root_pid else {}
        per_request = {group: ms / max(requests, 1) for group, ms in sorted(_delta_ms(self._before, after).items())}
        busy = sum(
            1
            for pid, (group, seconds) in after.items()
            if group == "replica" and seconds - self._before.get(pid, (group, 0.0))[1] > BUSY_REPLICA_CPU_S
        )
        return CpuUse(per_request, generator_ms / max(requests, 1), busy)
