"""`nmoe-sim report`: read a run or sweep directory, write `report/` (PNGs, index.html and, for a
run, timeline.json).

The report folder is assembled in a hidden staging folder beside the target and renamed into
place at the end, so a failure leaves no half-written report (an earlier one stays as it was).
A report folder is owned by this command: it carries a marker file, and only a folder with that
marker (or an empty one) is replaced; any other existing path is refused.

Nothing here imports torch: the run's columns and summary come from the torch-free schema
(telemetry/schema.py, telemetry/summary.py), so a report takes seconds, not the time to load torch.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from nmoe_sim.report import figures as F
from nmoe_sim.report import html as H
from nmoe_sim.report import network as N
from nmoe_sim.report.timeline import chrome_trace
from nmoe_sim.telemetry.output import method_slug, named_dir, place_dir
from nmoe_sim.telemetry.schema import RUN_TABLES, LinkStateRecord, PositionRecord, columns
from nmoe_sim.telemetry.summary import MethodSummary, RunSummary

MARKER = ".nmoe-sim-report"
EXPECTED = "expected a run directory (with summary.json) or a sweep directory (with sweep.csv)"
# A moving network's run-level tables: one for the run, no method column.
NETWORK_TABLES: dict[str, type] = {"links.csv": LinkStateRecord, "positions.csv": PositionRecord}
RUN_FILES = ("summary.json", "config.yaml", *RUN_TABLES, *NETWORK_TABLES, "partition.csv")


class ReportError(Exception):
    """The path cannot be reported on, or the report cannot be written there."""


def report_kind(path: Path) -> Literal["run", "sweep"]:
    """What `path` is, judged by the file that defines it; refused before anything is written."""
    if not path.exists():
        raise ReportError(f"{path}: no such directory; {EXPECTED}")
    if not path.is_dir():
        raise ReportError(f"{path} is not a directory; {EXPECTED}")
    if (path / "summary.json").is_file():
        return "run"
    if (path / "sweep.csv").is_file():
        return "sweep"
    raise ReportError(f"{path} has neither summary.json nor sweep.csv; {EXPECTED}")


def check_target(target: Path) -> None:
    """Only an empty folder or an earlier report (marker file) may be replaced."""
    if not target.exists():
        return
    try:
        if target.is_dir() and (not any(target.iterdir()) or (target / MARKER).is_file()):
            return
    except OSError as exc:
        raise ReportError(f"cannot write a report into {target}: {_reason(exc)}") from None
    raise ReportError(
        f"{target} exists and is not a report written by `nmoe-sim report` (no {MARKER} in it); "
        "choose another --out or remove it"
    )


def read_run_table(folder: Path, name: str) -> pd.DataFrame | None:
    """One of the run's CSVs (schema.RUN_TABLES), refused unless it has the schema's columns
    and every value has its column's type (a truncated or edited file is named, with the line)."""
    return _read_table(folder / name, RUN_TABLES[name], per_method=True)


def read_network_table(folder: Path, name: str) -> pd.DataFrame | None:
    """links.csv or positions.csv (NETWORK_TABLES): the record's columns without a method, each
    value of its column's type, then the checks of `_check_network_table`."""
    frame = _read_table(folder / name, NETWORK_TABLES[name], per_method=False)
    return None if frame is None else _check_network_table(folder / name, frame)


def _read_table(path: Path, record: type, per_method: bool) -> pd.DataFrame | None:
    need = columns(record) if per_method else tuple(f.name for f in dataclasses.fields(record))
    frame = read_csv(path, need)
    if frame is None:
        return None
    for f in dataclasses.fields(record):
        kind, _ = _column_kind(record, f)
        frame[f.name] = _checked_column(path, frame, f.name, kind, True)
    if per_method:
        frame["method"] = _checked_column(path, frame, "method", "str", False)
    return frame


def _check_network_table(path: Path, frame: pd.DataFrame) -> pd.DataFrame:
    """What a moving network's tables must hold beyond their types: names and times everywhere,
    links named `u>v`, rates and times not negative, roles `station` or `client`, a source and
    a target for every handover. ReportError naming the file, the line and the column."""
    name = path.name
    texts = {
        "events.csv": ("kind", "node"),
        "links.csv": ("link",),
        "positions.csv": ("node", "role"),
    }[name]
    record = RUN_TABLES.get(name) or NETWORK_TABLES[name]
    # every value is needed (a handover's source and target: below, by kind)
    needed = [f.name for f in dataclasses.fields(record) if f.name not in ("source", "target")]
    for column in needed:
        _checked_column(path, frame, column, "str", False)
    for column in texts:
        frame[column] = frame[column].astype(str)

    def refuse(bad: pd.Series, column: str, what: str) -> None:
        if bad.any():
            at = int(bad.to_numpy().argmax())
            raise ReportError(
                f"{path}: line {at + 2}: {column} must be {what}, got "
                f"{_shown(frame[column].iloc[at])}"
            )

    refuse(frame["t_s"] < 0, "t_s", "a time of the run (0 or later, seconds)")
    if name == "events.csv":
        handover = frame["kind"] == "handover"
        for column in ("source", "target"):
            empty = (handover & frame[column].isna()).to_numpy()
            if empty.any():
                raise ReportError(
                    f"{path}: line {int(empty.argmax()) + 2} has no {column} (a handover names "
                    "the base station the client leaves and the one it joins)"
                )
            frame[column] = frame[column].fillna("").astype(str)
    elif name == "links.csv":
        refuse(frame["link"].map(N.split_link).isna(), "link", "'u>v' (e.g. c3>bs0)")
        refuse(frame["bandwidth_mbps"] < 0, "bandwidth_mbps", "0 or more (Mbit/s)")
    else:
        refuse(~frame["role"].isin(["station", "client"]), "role", "'station' or 'client'")
    return frame


def _column_kind(record: type, f: dataclasses.Field[Any]) -> tuple[str, bool]:
    """("number" | "bool" | "str", optional) of a record field."""
    hint = typing.get_type_hints(record)[f.name]
    args = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    optional = type(None) in args
    base = next(a for a in args if a is not type(None))
    kind = "bool" if base is bool else "number" if base in (int, float) else "str"
    return kind, optional


def _checked_column(
    path: Path, frame: pd.DataFrame, name: str, kind: str, may_be_empty: bool
) -> pd.Series:
    """The column with numbers as numbers; ReportError at the first value of another type."""
    column = frame[name]
    empty = column.isna()
    if not may_be_empty and empty.any():
        line = int(empty.to_numpy().argmax()) + 2
        raise ReportError(
            f"{path}: line {line} has no {name} (a truncated or damaged file?); write the run again"
        )
    if kind == "number":
        values = pd.to_numeric(column, errors="coerce")
        bad = (values.isna() & ~empty) | values.isin([math.inf, -math.inf])
    elif kind == "bool":
        values = column
        bad = ~(empty | column.isin([True, False, "True", "False"]))
    else:
        return column
    if bad.any():
        at = int(bad.to_numpy().argmax())
        raise ReportError(
            f"{path}: line {at + 2}: {name} must be "
            f"{'a finite number' if kind == 'number' else 'True or False'}, got "
            f"{_shown(column.iloc[at])}"
        )
    return values


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:50] + "..."


def read_csv(path: Path, need: Sequence[str], required: bool = False) -> pd.DataFrame | None:
    """A CSV of the run, or None when it is absent and optional; refused when it lacks columns."""
    if not path.is_file():
        if required:
            raise ReportError(f"{path}: missing")
        return None
    try:
        with path.open("rb") as fh:
            fh.seek(max(path.stat().st_size - 1, 0))
            last = fh.read(1)
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path}: not a readable CSV ({str(exc)[:200]})") from None
    except OSError as exc:
        raise ReportError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if last not in (b"\n", b""):
        # Every table is written whole, ending in a newline: this one was cut short.
        raise ReportError(
            f"{path}: the last line is cut short (a truncated file?); write the run again"
        )
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise ReportError(f"{path}: missing column(s) {', '.join(missing)}")
    return frame


@dataclass
class RunData:
    """Everything a run report reads; optional files are None when absent."""

    path: Path
    summary: RunSummary
    metrics: pd.DataFrame | None
    trace: pd.DataFrame | None
    tasks: pd.DataFrame | None
    inference: pd.DataFrame | None
    heatmaps: dict[str, np.ndarray] = field(default_factory=dict)
    # A moving network's tables (absent where nothing moves); rounds.csv is read with them.
    events: pd.DataFrame | None = None
    links: pd.DataFrame | None = None
    positions: pd.DataFrame | None = None
    rounds: pd.DataFrame | None = None

    @property
    def methods(self) -> dict[str, MethodSummary]:
        return self.summary.methods


def read_summary(path: Path) -> RunSummary:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ReportError(f"{path}: not valid JSON ({str(exc)[:200]})") from None
    except OSError as exc:
        raise ReportError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not isinstance(raw, dict):
        raise ReportError(f"{path}: a run summary is a JSON object, got {type(raw).__name__}")
    methods = raw.get("methods")
    if not isinstance(methods, dict):
        raise ReportError(
            f"{path}: methods must be an object (method -> figures), got {_shown(methods)}"
        )
    for name, entry in methods.items():
        if not isinstance(entry, dict):
            raise ReportError(
                f"{path}: methods.{name} must be an object of the method's figures, got "
                f"{_shown(entry)}"
            )
    try:
        summary = RunSummary.from_dict(raw)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ReportError(f"{path}: not a run summary of this version ({exc!r})") from None
    problem = _type_problem(summary, "")
    if problem:
        raise ReportError(f"{path}: not a run summary of this version ({problem})")
    return summary


def _type_problem(value: Any, where: str, hint: Any = None) -> str | None:
    """Where `value` (a summary dataclass, or a value of type `hint`) breaks its declared types:
    numbers must be finite numbers (or null), texts texts, sections objects."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        hints = typing.get_type_hints(type(value))
        for f in dataclasses.fields(value):
            key = f"{where}.{f.name}" if where else f.name
            problem = _type_problem(getattr(value, f.name), key, hints[f.name])
            if problem:
                return problem
        return None
    if hint is None or hint is Any:
        return None
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType):
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    shown = _shown(value)
    if hint in (int, float):
        ok = value is None or (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
        return None if ok else f"{where}: expected a number, got {shown}"
    if hint is str:
        return None if isinstance(value, str) else f"{where}: expected a text, got {shown}"
    if origin is dict:
        if not isinstance(value, dict):
            return f"{where}: expected an object, got {shown}"
        for key, item in value.items():
            problem = _type_problem(item, f"{where}.{key}", args[1])
            if problem:
                return problem
        return None
    if origin is list:
        if not isinstance(value, list):
            return f"{where}: expected a list, got {shown}"
        for i, item in enumerate(value):
            problem = _type_problem(item, f"{where}[{i}]", args[0])
            if problem:
                return problem
    return None


def load_run(path: Path) -> RunData:
    summary = read_summary(path / "summary.json")
    heatmaps: dict[str, np.ndarray] = {}
    by_slug = {method_slug(m): m for m in summary.methods}
    for csv in sorted((path / "heatmaps").glob("*.csv")):
        frame = read_csv(csv, ())
        assert frame is not None
        frame = frame.drop(columns=[c for c in frame.columns if c == "client"])
        try:
            matrix = frame.to_numpy(float)
        except (ValueError, TypeError):
            matrix = None
        if matrix is None or matrix.size == 0 or not np.isfinite(matrix).all():
            raise ReportError(
                f"{csv}: a gating heat map holds finite numbers (a client per row, an expert "
                "per column); this one has text, gaps or no values"
            )
        heatmaps[by_slug.get(csv.stem, csv.stem)] = matrix
    order = {m: i for i, m in enumerate(summary.methods)}
    heatmaps = dict(sorted(heatmaps.items(), key=lambda kv: order.get(kv[0], len(order))))
    events = read_run_table(path, "events.csv")
    if events is not None:
        events = _check_network_table(path / "events.csv", events)
    return RunData(
        path=path,
        summary=summary,
        metrics=read_run_table(path, "metrics.csv"),
        trace=read_run_table(path, "trace.csv"),
        tasks=read_run_table(path, "tasks.csv"),
        inference=read_run_table(path, "inference.csv"),
        heatmaps=heatmaps,
        events=events,
        links=read_network_table(path, "links.csv"),
        positions=read_network_table(path, "positions.csv"),
        # only beside the handovers it is counted against: a static run's report reads what it
        # always read
        rounds=read_run_table(path, "rounds.csv") if events is not None else None,
    )


def build_report(path: Path, out: Path | None = None) -> Path:
    """Write the report of a run or sweep directory into `out` (default `path/report`)."""
    path = Path(path)
    kind = report_kind(path)
    target = named_dir(Path(out)) if out is not None else path / "report"
    check_target(target)
    data = load_run(path) if kind == "run" else None
    table = read_sweep_table(path / "sweep.csv") if kind == "sweep" else None
    created = _first_missing(target.parent)
    staging: Path | None = None
    placed = False
    try:
        staging = _staging(target)  # the folder can be written: known before any figure
        back = os.path.relpath(path.resolve(), target.resolve())
        try:
            if data is not None:
                text = _run_report(data, staging, back)
            else:
                assert table is not None
                text = _sweep_report(path, table, staging, back)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            # The files passed their checks but still do not fit together (edited by hand, or
            # from another version): one message, never a traceback.
            raise ReportError(
                f"{path}: its files do not make a report ({type(exc).__name__}: "
                f"{str(exc)[:200]}); were they edited, or written by another version?"
            ) from None
        (staging / "index.html").write_text(text, encoding="utf-8")
        (staging / MARKER).write_text("written by `nmoe-sim report`; replaced by the next one\n")
        _put_in_place(staging, target)
        placed = True
    except OSError as exc:  # e.g. the disk filled up while writing
        raise ReportError(f"cannot write the report into {target}: {_reason(exc)}") from None
    finally:
        if staging is not None:  # (gone once renamed into place)
            shutil.rmtree(staging, ignore_errors=True)
        if not placed and created is not None:  # folders made for a report that never came
            shutil.rmtree(created, ignore_errors=True)
    return target


def _first_missing(folder: Path) -> Path | None:
    """The outermost of `folder` and its parents that does not exist yet (None: it exists)."""
    missing = None
    for f in (folder, *folder.parents):
        if f.exists():
            break
        missing = f
    return missing


def _staging(target: Path) -> Path:
    """The hidden folder the report is assembled in, beside `target`; ReportError naming the
    folder where it cannot be made."""
    staging = target.parent / f".{target.name}.partial-{os.getpid()}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
    except OSError as exc:
        raise ReportError(
            f"cannot write a report into {target}: {_reason(exc)}; choose another --out"
        ) from None
    return staging


def _reason(exc: OSError) -> str:
    """Why a folder cannot be written, naming the path that stands in the way (the folder, not
    our hidden staging folder in it)."""
    where = Path(exc.filename or "")
    for folder in (where, *where.parents):
        if folder.exists() and not folder.is_dir():
            return f"{folder} is a file, not a folder"
    if where.name.startswith(".") and ".partial-" in where.name:
        where = where.parent
    why = exc.strerror or str(exc)
    return f"{where} cannot be written ({why})" if str(where) not in ("", ".") else why


def _put_in_place(staging: Path, target: Path) -> None:
    """An earlier report is swapped out (and back if the swap is cut short); a new or empty
    folder gets the staged report as the run directory does."""
    if not (target.is_dir() and (target / MARKER).is_file()):
        place_dir(staging, target)
        return
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    target.rename(old)
    try:
        staging.rename(target)
    except BaseException:
        old.rename(target)
        raise
    finally:
        if target.exists():
            shutil.rmtree(old, ignore_errors=True)


def read_sweep_table(path: Path) -> pd.DataFrame:
    """sweep.csv: methods named, figures numeric (empty where a point failed). The rows of
    points that failed (`status` failed: no method, no figures) are left out."""
    table = read_csv(path, ("method",), required=True)
    assert table is not None
    if "status" in table.columns:
        table = table[table["status"].astype(str) != "failed"].reset_index(drop=True)
    if not F.swept_keys(table):
        raise ReportError(f"{path}: no swept key columns before `method`")
    table["method"] = _checked_column(path, table, "method", "str", False)
    for column in [*F.SWEEP_FIGURES, "wall_time_s"]:
        if column in table.columns:
            table[column] = _checked_column(path, table, column, "number", True)
    return table


# --- a run -----------------------------------------------------------------------------------


def _pct(x: Any) -> str:
    return "" if x is None or pd.isna(x) else f"{100 * float(x):.2f}"


def _num(x: Any, scale: float = 1.0, digits: int = 2) -> str:
    return "" if x is None or pd.isna(x) else f"{scale * float(x):.{digits}f}"


def methods_table(methods: dict[str, MethodSummary]) -> pd.DataFrame:
    rows = []
    for name, m in methods.items():
        dropped = m.updates.dropped
        rows.append(
            {
                "method": name,
                "accuracy global (%)": _pct(m.accuracy_global),
                "accuracy local (%)": _pct(m.accuracy_local),
                "bytes (MB)": _num(m.bytes_total, 1e-6),
                "sim time (s)": _num(m.sim_time_s, 1.0, 3),
                "wall time (s)": _num(m.wall_time_s, 1.0, 1),
                "updates applied": str(m.updates.applied),
                "updates dropped": ", ".join(f"{k}: {v}" for k, v in dropped.items()) or "",
            }
        )
    return pd.DataFrame(rows)


def stages_table(methods: dict[str, MethodSummary]) -> pd.DataFrame:
    """Method x stage: MB and simulated seconds (summary.json's per-stage figures)."""
    stages: list[str] = []
    for m in methods.values():
        stages.extend(s for s in m.stages if s not in stages)
    rows = []
    for name, m in methods.items():
        row = {"method": name}
        for stage in stages:
            s = m.stages.get(stage)
            row[stage] = f"{_num(s.bytes, 1e-6)} MB / {_num(s.sim_time_s, 1.0, 3)} s" if s else ""
        rows.append(row)
    return pd.DataFrame(rows)


def inference_table(methods: dict[str, MethodSummary]) -> pd.DataFrame | None:
    rows = []
    for name, m in methods.items():
        inf = m.inference
        if inf is None:
            continue
        rows.append(
            {
                "method": name,
                "p50 (ms)": _num(inf.latency_p50_ms),
                "p95 (ms)": _num(inf.latency_p95_ms),
                "p99 (ms)": _num(inf.latency_p99_ms),
                "accuracy (%)": _pct(inf.accuracy),
                "bytes per query (KB)": _num(inf.bytes_per_query, 1e-3),
                "deadline misses": str(inf.deadline_misses),
            }
        )
    return pd.DataFrame(rows) if rows else None


def _run_report(data: RunData, folder: Path, back: str) -> str:
    methods = data.methods
    empty = pd.DataFrame()
    metrics = data.metrics if data.metrics is not None else empty
    trace = data.trace if data.trace is not None else empty
    tasks = data.tasks if data.tasks is not None else empty
    # The serving stage (trace stage "inference") runs after training on the method's clock; the
    # training figures leave it out, so a bytes line still ends at the method's bytes_total.
    training = trace[trace["stage"].astype(str) != "inference"] if len(trace) else trace
    names = [*methods]
    for frame in (metrics, trace, tasks):
        names += list(frame.get("method", []))
    colours = F.method_colours(names)

    s = data.summary
    title = f"nmoe-sim run report: {s.scenario} (seed {s.seed})"
    blocks = [_run_intro(s, back, data.path)]
    blocks += [H.heading("Methods"), H.table(methods_table(methods))]
    if any(m.stages for m in methods.values()):
        blocks += [
            H.heading("Per stage", 3),
            H.paragraph(
                "Bytes and simulated time of each stage (summary.json); a gating method "
                "includes its pipeline's shared stages 1-2."
            ),
            H.table(stages_table(methods)),
        ]

    blocks.append(H.heading("Training"))
    drawn: list[tuple[F.Figure | None, str]] = [
        (
            F.accuracy_figure(metrics, methods, colours, folder / "accuracy.png")
            if data.metrics is not None
            else None,
            "No accuracy figure: metrics.csv is missing or has no evaluations.",
        ),
        (
            F.bytes_figure(training, methods, colours, folder / "bytes.png"),
            "No bytes figure: trace.csv is missing or empty (no method sent anything).",
        ),
        (
            F.heatmap_figure(data.heatmaps, folder / "gating.png"),
            "No gating heat maps: the run has no heatmaps/*.csv (no NMoE method).",
        ),
        (
            F.utilisation_figure(tasks, training, folder / "utilisation.png"),
            "No utilisation figure: tasks.csv is missing or empty.",
        ),
    ]
    for fig, missing in drawn:
        blocks.append(H.figure(fig) if fig is not None else H.note(missing))

    blocks += [H.heading("Inference"), *_inference_blocks(data, colours, folder)]
    blocks += _network_blocks(data, colours, folder)

    about = {"scenario": s.scenario, "seed": s.seed, "run": str(data.path.resolve())}
    clients = N.client_names(data.links, data.events, data.positions)
    timeline = chrome_trace(tasks, trace, about, data.events, data.links, clients)
    (folder / "timeline.json").write_text(
        json.dumps(timeline, ensure_ascii=False, allow_nan=False), encoding="utf-8"
    )
    blocks += [
        H.heading("Timeline"),
        "<p>"
        + H.link("timeline.json", "timeline.json")
        + ": every compute task and transfer on the simulated clock, one process per method and "
        "one track per node (transfers on the sender's track). Open it in Perfetto: "
        + H.link("https://ui.perfetto.dev", "ui.perfetto.dev")
        + " → <i>Open trace file</i> (or chrome://tracing → <i>Load</i>). Times shown as "
        "seconds there are simulated seconds." + _network_timeline_note(data) + "</p>",
    ]
    files = [f for f in RUN_FILES if (data.path / f).is_file()]
    blocks += [
        H.heading("Files of the run"),
        "<p>" + " · ".join(H.link(f"{back}/{f}", f) for f in files) + "</p>",
    ]
    return H.page(title, blocks)


def _run_intro(s: RunSummary, back: str, path: Path) -> str:
    parts = [
        f"dataset {s.dataset.name} ({s.dataset.train} train / {s.dataset.test} test images)",
        f"{s.clients} clients",
        "partition " + ", ".join(f"{k}={v}" for k, v in s.partition.items()),
        f"run wall time {float(s.wall_time_s):.1f} s",
    ]
    return (
        "<p>Run directory "
        + H.link(f"{back}/", path.resolve().name)
        + ": "
        + H.escape_text("; ".join(parts))
        + ".</p>"
    )


def _network_timeline_note(data: RunData) -> str:
    notes = []
    if data.events is not None:
        notes.append("each handover is an instant event on the moving client's track")
    if data.links is not None:
        notes.append(
            "each changing link's capacity is a counter (Mbit/s) in the process "
            "<i>network (links.csv)</i>, 0 where a client's access link ends at a handover"
        )
    if not notes:
        return ""
    text = "; ".join(notes)
    return " " + text[0].upper() + text[1:] + "."


def _network_blocks(data: RunData, colours: dict[str, Any], folder: Path) -> list[str]:
    """The "Mobile network" section: only where the run has events.csv, links.csv or
    positions.csv (a network that moves or changes); each figure only where its files are."""
    if data.events is None and data.links is None and data.positions is None:
        return []
    clients = N.client_names(data.links, data.events, data.positions)
    end = N.run_end(
        N.method_ends(data.methods),
        (data.links, "t_s"),
        (data.events, "t_s"),
        (data.positions, "t_s"),
    )
    handovers = N.handover_timeline(data.events) if data.events is not None else None
    steps = N.access_steps(data.links, clients, end) if data.links is not None else None
    blocks = [H.heading("Mobile network"), H.paragraph(_network_line(data, steps))]

    if data.positions is not None:
        fig = F.positions_figure(data.positions, handovers, folder / "network_positions.png")
        blocks.append(H.figure(fig) if fig else H.note("positions.csv has no rows."))
    else:
        blocks.append(H.note("No positions figure: the run has no positions.csv."))

    if steps is not None:
        fig = F.access_rate_figure(steps, handovers, end, folder / "network_access_rate.png")
        missing = "No access rate figure: links.csv lists no client's access link."
        blocks.append(H.figure(fig) if fig else H.note(missing))
    else:
        blocks.append(H.note("No access rate figure: the run has no links.csv."))

    if data.events is None:
        blocks.append(H.note("No round time against handovers: the run has no events.csv."))
    elif data.rounds is None or data.rounds.empty:
        blocks.append(H.note("No round time against handovers: rounds.csv has no rounds."))
    else:
        counts = N.round_handovers(data.rounds, data.events)
        fig = F.round_handover_figure(counts, colours, folder / "network_round_handovers.png")
        assert fig is not None  # (rounds, so dots)
        blocks += [
            H.figure(fig),
            H.paragraph(
                "Mean round time of the rounds with and without a handover (rounds.csv against "
                "events.csv, as in the figure):"
            ),
            H.table(N.round_time_table(counts)),
        ]
    return blocks


def _network_line(data: RunData, steps: pd.DataFrame | None) -> str:
    """One line: handovers per method, and the clients' mean access rates."""
    parts = []
    counts = N.handovers_per_method(data.events, {m: s.handovers for m, s in data.methods.items()})
    if counts:
        by_count: dict[int, list[str]] = {}
        for method, n in counts.items():
            by_count.setdefault(n, []).append(method)
        parts.append(
            "Handovers per method: "
            + "; ".join(f"{n} ({', '.join(ms)})" for n, ms in sorted(by_count.items()))
        )
    means = N.time_weighted_means(steps) if steps is not None else {}
    if means:
        rates = ", ".join(f"{d}link {means[d]:.1f} Mbit/s" for d in N.DIRECTIONS if d in means)
        parts.append(
            f"Mean access rate {rates} (each client's average over the run, then the mean over "
            f"{steps['client'].nunique() if steps is not None else 0} clients; links.csv)"
        )
    return (". ".join(parts) + ".") if parts else "The network's tables have no rows."


def _inference_blocks(data: RunData, colours: dict[str, Any], folder: Path) -> list[str]:
    """Drawn only when the serving stage has written its results (summary `inference` entries;
    inference.csv for the latency CDF)."""
    table = inference_table(data.methods)
    if table is None:
        return [
            H.note(
                "No inference results in this run (no `inference` entry in summary.json): "
                "latency CDF and expert load figures are skipped."
            )
        ]
    blocks = [H.table(table)]
    if data.inference is not None:
        fig = F.latency_cdf_figure(data.inference, colours, folder / "inference_latency_cdf.png")
        blocks.append(H.figure(fig) if fig else H.note("inference.csv has no latencies."))
    else:
        blocks.append(H.note("No latency CDF: the run has no inference.csv."))
    loads = {
        name: m.inference.expert_utilisation
        for name, m in data.methods.items()
        if m.inference is not None
    }
    fig = F.expert_load_figure(loads, colours, folder / "inference_expert_load.png")
    missing = "No expert load figure: the inference entries have no expert_utilisation."
    blocks.append(H.figure(fig) if fig else H.note(missing))
    return blocks


# --- a sweep ---------------------------------------------------------------------------------


def sweep_table(table: pd.DataFrame) -> pd.DataFrame:
    """sweep.csv with its figures in readable units."""
    shown = table.copy()
    for column, (_, unit, scale) in F.SWEEP_FIGURES.items():
        if column in shown.columns:
            digits = 3 if unit == "s" else 2
            shown[column] = [_num(v, scale, digits) for v in shown[column]]
            shown = shown.rename(columns={column: f"{column} ({unit})"})
    if "wall_time_s" in shown.columns:
        shown["wall_time_s"] = [_num(v, 1.0, 1) for v in shown["wall_time_s"]]
        shown = shown.rename(columns={"wall_time_s": "wall_time_s (s)"})
    return shown.astype(str).replace("nan", "")


def _sweep_report(path: Path, table: pd.DataFrame, folder: Path, back: str) -> str:
    keys = F.swept_keys(table)
    figures = F.sweep_figures(table, folder)
    values = "; ".join(
        f"{k} = {', '.join(F._format_value(v) for v in dict.fromkeys(table[k]))}" for k in keys
    )
    blocks = [
        "<p>Sweep directory "
        + H.link(f"{back}/", path.resolve().name)
        + ": "
        + H.escape_text(f"{values}; methods {', '.join(dict.fromkeys(table['method']))}.")
        + " "
        + H.link(f"{back}/sweep.csv", "sweep.csv")
        + "</p>",
        H.heading("Results"),
        H.table(sweep_table(table)),
    ]
    for key in keys:
        blocks.append(H.heading(f"Against {key}"))
        blocks += [H.figure(fig) for k, fig in figures if k == key]
    if "point" in table.columns:
        items = []
        for point in dict.fromkeys(table["point"]):
            entry = H.link(f"{back}/{point}/", str(point))
            if (path / str(point) / "report" / "index.html").is_file():
                entry += " (" + H.link(f"{back}/{point}/report/index.html", "report") + ")"
            items.append(f"<li>{entry}</li>")
        blocks += [
            H.heading("Points"),
            H.paragraph(
                "Each point is a run directory; `nmoe-sim report` on one of them gives its "
                "training curves, heat maps and timeline."
            ),
            "<ul>" + "".join(items) + "</ul>",
        ]
    title = f"nmoe-sim sweep report: {path.name}"
    return H.page(title, blocks)
