"""Progress on stderr: a one-line bar on a terminal, plain lines elsewhere (CI logs)."""

from __future__ import annotations

import sys
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Counts finished steps out of ``total``; ``quiet`` prints nothing."""

    def __init__(
        self,
        total: int,
        *,
        stream: TextIO | None = None,
        tty: bool | None = None,
        quiet: bool = False,
    ) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.quiet = quiet

    def start(self, label: str) -> None:
        """Say what is being measured now (redraws the bar on a terminal)."""
        if self.quiet:
            return
        if self.tty:
            width = 30
            filled = width * self.done // self.total
            bar = "#" * filled + "-" * (width - filled)
            self.stream.write(f"\r[{bar}] {self.done}/{self.total} {label[:60]:<60}")
        else:
            self.stream.write(f"[{self.done + 1}/{self.total}] {label} ...\n")
        self.stream.flush()

    def finish(self, summary: str) -> None:
        """Mark the current step finished; the summary is shown on plain-line output."""
        self.done += 1
        if self.quiet:
            return
        if not self.tty:
            self.stream.write(f"    {summary}\n")
        elif self.done >= self.total:
            self.stream.write("\r" + " " * 100 + "\r")
        self.stream.flush()

    def grow(self, extra: int) -> None:
        """Add steps discovered late (a model's optional baseline)."""
        self.total += extra
