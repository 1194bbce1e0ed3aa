"""Interruptions: SIGINT (Ctrl-C) and SIGTERM (what batch schedulers send before killing) both
end a run the same way, as a `KeyboardInterrupt` that unwinds through every `finally` (backend
closed, checkpoint kept, staging folder removed).

Standard library only: the CLI installs this before its heavy imports.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so the same cleanup runs."""

    signum = signal.SIGTERM


class RunInterrupted(KeyboardInterrupt):
    """A run (or sweep) stopped by a signal after its checkpoint was kept: what it finished."""

    def __init__(
        self, signum: int, finished: int, total: int, detail: str = "", unit: str = "methods"
    ) -> None:
        super().__init__(f"interrupted: finished {finished} of {total} {unit}{detail}")
        self.signum = signum
        self.finished = finished
        self.total = total


def signal_number(exc: BaseException) -> int:
    """The signal behind an interruption: SIGTERM for `Terminated`, else SIGINT."""
    return int(getattr(exc, "signum", signal.SIGINT))


def exit_code(exc: BaseException) -> int:
    """The shell's convention: 128 + the signal number (130 for SIGINT, 143 for SIGTERM)."""
    return 128 + signal_number(exc)


received: int | None = None  # the signal that interrupted this process, once one did


def _raise_once(signum: int, frame: FrameType | None) -> None:
    global received
    received = signum
    # Further signals while the first one unwinds would cut the cleanup short (a backend half
    # closed, a traceback): ignore them until the command ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if signum == signal.SIGTERM:
        raise Terminated()
    raise KeyboardInterrupt()


_active = False  # whether `_raise_once` is meant to handle SIGINT/SIGTERM in this process


def install() -> dict[signal.Signals, Any]:
    """SIGINT and SIGTERM raise (once) in the main thread from now on; returns the previous
    handlers. Raises ValueError outside the main thread."""
    global _active
    previous = {s: signal.signal(s, _raise_once) for s in (signal.SIGINT, signal.SIGTERM)}
    _active = True
    return previous


@contextmanager
def interruptible() -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM raise (once) in the main thread."""
    global _active
    was_active = _active
    try:
        previous = install()
    except ValueError:  # not the main thread (e.g. a test runner's worker): leave them be
        yield
        return
    try:
        yield
    finally:
        _active = was_active
        for s, handler in previous.items():
            signal.signal(s, handler)


def reclaim_signals() -> None:
    """Take SIGINT/SIGTERM back after a library replaced our handlers: `ray.init` sets its own
    SIGTERM handler (it kills Ray's processes and exits 1: no checkpoint message, no cleanup
    of ours)."""
    if not _active:
        return
    try:
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, _raise_once)
    except ValueError:  # not the main thread
        pass
