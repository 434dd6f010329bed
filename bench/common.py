"""Helpers shared by the benchmarks: peak memory of a process tree (the driver and its Ray cluster)."""

from __future__ import annotations

import threading
import time

import psutil


def tree_rss_bytes(root: psutil.Process) -> int:
    """Resident memory of a process and all its descendants (Ray's GCS, raylet and workers)."""
    total = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            total += process.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


class PeakMemory:
    """Samples the tree's RSS in a background thread; `peak_gib` after the `with` block."""

    def __init__(self, interval_s: float = 0.2, pid: int | None = None) -> None:
        self._root = psutil.Process(pid)
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.peak_bytes = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, tree_rss_bytes(self._root))
            time.sleep(self._interval_s)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, tree_rss_bytes(self._root))

    @property
    def peak_gib(self) -> float:
        return self.peak_bytes / 2**30
