"""py-spy sampling of running processes, and a summary of its collapsed (raw) output by module:function."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path


def start_py_spy(pid: int, seconds: float, out: Path) -> subprocess.Popen:
    """py-spy recording `pid` at 200 Hz for `seconds` into `out` (raw format); wait on the returned process."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    command = [spy, "record", "--nonblocking", "--format", "raw", "--rate", "200"]
    command += ["-d", str(max(1, round(seconds))), "-p", str(pid), "-o", str(out)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarize_profile(path: Path, top: int) -> list[str]:
    """Self and inclusive sample shares by module:function from py-spy's collapsed (raw) output."""
    self_samples: dict[str, int] = defaultdict(int)
    inclusive: dict[str, int] = defaultdict(int)
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [re.sub(r" \(.*?/site-packages/", " (", f) for f in stack.split(";")]
        total += count
        self_samples[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [
        f"  self   {share:5.1%}  {frame}"
        for frame, share in sorted(((f, n / total) for f, n in self_samples.items()), key=lambda x: -x[1])[:top]
    ]
    lines += [
        f"  incl   {share:5.1%}  {frame}"
        for frame, share in sorted(((f, n / total) for f, n in inclusive.items()), key=lambda x: -x[1])[:top]
    ]
    return lines
