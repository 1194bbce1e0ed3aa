"""Progress as the work reports it: plain lines when the output is not a terminal."""

from __future__ import annotations

import io
import re

from rich.console import Console

from nmoe_sim.telemetry.progress import RunProgress


def _plain(every_s: float) -> tuple[RunProgress, io.StringIO]:
    sink = io.StringIO()
    console = Console(file=sink, force_terminal=False, width=200)
    return RunProgress(console, every_s=every_s), sink


def _lines(sink: io.StringIO) -> list[str]:
    # Drop the elapsed-time prefix "[   1.2 s] ".
    return [re.sub(r"^\[\s*[0-9.]+ s\] ", "", line) for line in sink.getvalue().splitlines()]


def test_every_round_is_a_line_when_lines_are_not_throttled() -> None:
    progress, sink = _plain(every_s=0.0)
    with progress:
        progress.stage("nmoe/fedsc", "extractor", 3)
        for r in range(3):
            progress.round(r + 1, 1.5 * (r + 1))
        progress.stage("nmoe/fedsc", "personalized experts")
    assert _lines(sink) == [
        "nmoe/fedsc: extractor (3 rounds)",
        "nmoe/fedsc: extractor round 1/3, sim 1.5 s",
        "nmoe/fedsc: extractor round 2/3, sim 3.0 s",
        "nmoe/fedsc: extractor round 3/3, sim 4.5 s",
        "nmoe/fedsc: personalized experts",
    ]


def test_throttled_lines_keep_stage_starts_and_last_rounds() -> None:
    progress, sink = _plain(every_s=1e9)
    with progress:
        progress.stage("fedavg", "fedavg", 50)
        for r in range(50):
            progress.round(r + 1, float(r + 1))
    # The stage line was just printed, so no round is due before the last one.
    assert _lines(sink) == ["fedavg: fedavg (50 rounds)", "fedavg: fedavg round 50/50, sim 50.0 s"]


def test_user_text_is_not_read_as_markup() -> None:
    progress, sink = _plain(every_s=0.0)
    with progress:
        progress.stage("m[bold]x", "[red]stage")
    assert _lines(sink) == ["m[bold]x: [red]stage"]
