"""Where a run or sweep writes (refused up front if it would overwrite earlier results) and
how its per-method files are named.

Standard library only, so the CLI can name these errors without loading the writer's pandas.
"""

from __future__ import annotations

import errno
import os
from datetime import UTC, datetime
from pathlib import Path


class OutputError(Exception):
    """The run directory cannot be used (e.g. it already holds results)."""


def check_output_dir(path: Path) -> None:
    """Refuse before any work starts to overwrite an earlier run."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise OutputError(
            f"output directory {path} already exists and is not empty; "
            "choose another with --out or remove it"
        )


def named_dir(path: Path) -> Path:
    """`path` with a name of its own: `.` and `..` become the folders they stand for, so that
    what goes beside a run directory (its checkpoint) is not put inside it."""
    return Path(os.path.abspath(path)) if path.name in ("", "..") else path


def method_slug(method: str) -> str:
    """A method's name as a file name (its gating heat map: heatmaps/<slug>.csv)."""
    return method.replace("/", "_")


def is_complete(path: Path) -> bool:
    """A finished run directory (written whole: staged, then renamed), summary.json and all."""
    return (path / "summary.json").is_file()


def default_run_dir(name: str) -> Path:
    """runs/<name>-<UTC time>: where a run goes without --out."""
    return Path("runs") / f"{name}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"


def place_dir(staging: Path, target: Path) -> None:
    """Rename a staged folder into place. An existing empty folder (e.g. `--out .`: the shell's
    current folder, which must stay that folder) gets the staged entries moved into it,
    summary.json (what marks a run complete) last, and none of them if one cannot be."""
    if not target.exists():
        staging.rename(target)
        return
    if any(target.iterdir()):  # it was empty when the command began
        raise FileExistsError(errno.ENOTEMPTY, "filled by something else meanwhile", str(target))
    names = sorted(os.listdir(staging), key=lambda name: name == "summary.json")
    moved: list[str] = []
    try:
        for name in names:
            os.rename(staging / name, target / name)
            moved.append(name)
    except BaseException:
        for name in reversed(moved):
            os.rename(target / name, staging / name)
        raise
    staging.rmdir()
