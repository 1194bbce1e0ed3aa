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


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so the same cleanup runs."""

    signum = signal.SIGTERM


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by a signal after its checkpoint was kept: what it had finished."""

    def __init__(self, signum: int, finished: int, total: int, detail: str = "") -> None:
        super().__init__(f"interrupted: finished {finished} of {total} methods{detail}")
        self.signum = signum
        self.finished = finished
        self.total = total
        self.detail = detail


def signal_number(exc: BaseException) -> int:
    """The signal behind an interruption: SIGTERM for `Terminated`, else SIGINT."""
    return int(getattr(exc, "signum", signal.SIGINT))


def exit_code(exc: BaseException) -> int:
    """The shell's convention: 128 + the signal number (130 for SIGINT, 143 for SIGTERM)."""
    return 128 + signal_number(exc)


def _raise_once(signum: int, frame: FrameType | None) -> None:
    # Further signals while the first one unwinds would cut the cleanup short (a backend half
    # closed, a traceback): ignore them until the command ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if signum == signal.SIGTERM:
        raise Terminated()
    raise KeyboardInterrupt()


@contextmanager
def interruptible() -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM raise (once) in the main thread."""
    try:
        previous = {s: signal.signal(s, _raise_once) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread (e.g. a test runner's worker): leave them be
        yield
        return
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
