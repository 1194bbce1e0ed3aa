"""Progress of a run, as the work reports it: a rich bar on a terminal, plain lines otherwise.

The code that drives a stage says what it is and how many rounds it has (`stage`) and reports
each finished round with the simulated time (`round`); nothing predicts a run-wide total. On a
terminal one bar shows the current stage; elsewhere (a log file, nohup, a batch job, CI) one
line is printed when a stage starts and after a round when `every_s` seconds have passed since
the last line, and after its last round, so a long run always shows signs of life.
"""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

PLAIN_EVERY_S = 10.0


class RunProgress:
    def __init__(self, console: Console | None = None, every_s: float = PLAIN_EVERY_S) -> None:
        self._console = console or Console(stderr=True)
        self._every_s = every_s
        self._start = time.perf_counter()
        self._last_line = float("-inf")
        self._label = ""
        self._total: int | None = None
        self._bar: Progress | None = None
        if self._console.is_terminal:
            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("sim {task.fields[sim]}"),
                TimeElapsedColumn(),
                console=self._console,
                transient=False,
            )
            self._task = self._bar.add_task("starting", total=None, sim="-")

    def __enter__(self) -> RunProgress:
        if self._bar:
            self._bar.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar:
            self._bar.stop()

    def stage(self, method: str, stage: str, rounds: int | None = None) -> None:
        """`method` starts `stage`; `rounds`: how many it will report, if it counts rounds."""
        self._label = f"{method}: {stage}"
        self._total = rounds
        if self._bar:
            self._bar.reset(self._task, total=rounds, description=escape(self._label), sim="-")
        else:
            counted = f" ({rounds} rounds)" if rounds else ""
            self._line(f"{self._label}{counted}")

    def round(self, done: int, sim_time_s: float) -> None:
        """`done` rounds of the current stage are finished, at simulated time `sim_time_s`."""
        sim = f"{sim_time_s:.1f} s"
        if self._bar:
            self._bar.update(self._task, completed=done, sim=sim)
            return
        last = self._total is not None and done >= self._total
        if last or time.perf_counter() - self._last_line >= self._every_s:
            of = f"/{self._total}" if self._total is not None else ""
            self._line(f"{self._label} round {done}{of}, sim {sim}")

    def _line(self, text: str) -> None:
        now = time.perf_counter()
        self._last_line = now
        self._console.print(escape(f"[{now - self._start:7.1f} s] {text}"), highlight=False)
