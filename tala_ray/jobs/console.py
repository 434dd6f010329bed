"""What a long job shows on the terminal: one progress display a stage, while everything else
the process prints (Ray's, Serve's and Tune's logs, forwarded worker output) goes to a log file."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

REFRESH_S = 0.5  # how often a live bar redraws its elapsed time while a stage blocks


class StageProgress:
    """The progress of one stage: call `advance()` as each of its units finishes."""

    def __init__(self, total: int | None, bar: tqdm | None) -> None:
        self.total, self.done, self._bar = total, 0, bar

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)


class Console:
    """Stage lines and the report, written to `stream`.

    On a terminal (`live`) each stage is one tqdm bar that stays when the stage ends. Otherwise
    (a pipe, a file, CI) plain text, no carriage returns or colour codes: one line a stage, its
    title written when it starts and what it did added when it ends; when the logs share the
    stream (`interleaved`, `--verbose`) the end gets a line of its own.
    """

    def __init__(self, stream: TextIO, total_stages: int, live: bool | None = None, interleaved: bool = False) -> None:
        self.stream, self.total_stages, self.interleaved = stream, total_stages, interleaved
        self.live = stream.isatty() if live is None else live
        self.index = 0
        self._open = False  # a stage's line waits for its end

    def line(self, text: str = "") -> None:
        self.stream.write(("\n" if self._open else "") + text + "\n")
        self.stream.flush()
        self._open = False

    @contextmanager
    def stage(self, title: str, total: int | None = None, unit: str = "step") -> Iterator[StageProgress]:
        """Show one stage while the body runs; the elapsed time is shown when it ends."""
        self.index += 1
        label = f"[{self.index}/{self.total_stages}]"
        started = time.perf_counter()
        if not self.live:
            if self.interleaved:
                self.line(f"{label} {title}")
            else:
                self.stream.write(f"{label} {title} ... ")
                self.stream.flush()
                self._open = True
            progress = StageProgress(total, None)
            yield progress
            units = f"{progress.done}/{total} {unit}s, " if total else ""
            done = f"done ({units}{_seconds(started)})"
            if self._open:
                self.stream.write(done + "\n")
                self.stream.flush()
                self._open = False
            else:
                self.line(f"{' ' * len(label)} {done}")
            return
        # counts and time first: a narrow terminal trims the end of the line, which is the title's
        prefix = "{desc} {n_fmt}/{total_fmt} " + unit + "s |{bar:12}| {elapsed}" if total else "{desc} {elapsed}"
        shape = prefix + "  " + title.replace("{", "{{").replace("}", "}}")
        bar = tqdm(
            total=total,
            desc=label,
            file=self.stream,
            bar_format=shape,
            ncols=_columns(self.stream),
            leave=True,
        )
        stop = threading.Event()
        ticker = threading.Thread(target=_tick, args=(bar, stop), daemon=True)
        ticker.start()
        try:
            yield StageProgress(total, bar)
        finally:
            stop.set()
            ticker.join()
            bar.close()


def _tick(bar: tqdm, stop: threading.Event) -> None:
    while not stop.wait(REFRESH_S):
        bar.refresh()


def _columns(stream: TextIO) -> int:
    """The terminal's width (a pseudo-terminal may report 0: then $COLUMNS, or 80)."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError):
        columns = 0
    return columns or int(os.environ.get("COLUMNS") or 80)


def _seconds(started: float) -> str:
    return f"{time.perf_counter() - started:.0f}s"


@contextmanager
def output_to_file(path: Path) -> Iterator[TextIO]:
    """Send everything this process and its children print to `path`; yield the terminal.

    Both the file descriptors 1 and 2 (what C code, child processes and Ray's log forwarding write
    to) and Python's `sys.stdout` / `sys.stderr` are redirected; the yielded stream writes to the
    original standard output, so progress and the report still reach the user.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    python_streams = sys.stdout, sys.stderr
    log = open(path, "a", buffering=1)  # closed in the finally below
    terminal = os.fdopen(os.dup(saved[0]), "w", buffering=1)
    try:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        sys.stdout = sys.stderr = log
        yield terminal
    finally:
        sys.stdout, sys.stderr = python_streams
        log.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        terminal.close()
        log.close()
