"""Progress of long loops (scoring photos, a coreset, shards, a folder's predictions): a tqdm bar on a terminal, and in
a log (output redirected, CI, nohup) a plain line every `LOG_EVERY_SECONDS` and one at the end, since a redrawn bar
would leave a log either empty or full of carriage returns."""

from __future__ import annotations

import sys
import time
from typing import Iterable, TextIO

from tqdm import tqdm

LOG_EVERY_SECONDS = 30.0


def progress_bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
                 initial: int = 0, file: TextIO | None = None, **bar_options):
    """A tqdm bar when `file` (standard error by default) is a terminal, else a `LogLines` with the same use:
    iterate over it, or call `update(n)`; a context manager either way. `bar_options` go to tqdm only."""
    file = file or sys.stderr
    if _is_terminal(file):
        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, file=file, **bar_options)
    return LogLines(iterable, total=total, desc=desc, unit=unit, initial=initial, file=file)


class LogLines:
    """Progress as whole lines in tqdm's words ("scoring:  40%|...| 233/582 [01:40<02:30, 2.3photo/s]" without
    the bar): at most one every `every` seconds, and the last when the loop ends (if anything was counted)."""

    def __init__(self, iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
                 unit: str = "it", initial: int = 0, file: TextIO | None = None,
                 every: float = LOG_EVERY_SECONDS, clock=time.monotonic):
        self.iterable, self.desc, self.unit, self.file, self.every, self.clock = (
            iterable, desc, unit, file or sys.stderr, every, clock)
        self.total = len(iterable) if total is None and hasattr(iterable, "__len__") else total
        self.n = self.initial = initial
        self.started = self.last_line = clock()
        self.printed_at: int | None = None  # the count of the last line written

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.clock() - self.last_line >= self.every:
            self._write()

    def close(self) -> None:
        if self.n > self.initial and self.printed_at != self.n:
            self._write()

    def __enter__(self) -> "LogLines":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def line(self) -> str:
        """The line for the count so far."""
        return tqdm.format_meter(self.n, self.total, self.clock() - self.started, prefix=self.desc, unit=self.unit,
                                 initial=self.initial, ncols=0)

    def _write(self) -> None:
        self.file.write(self.line() + "\n")
        self.file.flush()
        self.last_line, self.printed_at = self.clock(), self.n


def _is_terminal(file: TextIO) -> bool:
    try:
        return file.isatty()
    except (AttributeError, ValueError):  # a closed or a file-like object without a terminal
        return False
