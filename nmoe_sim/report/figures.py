"""The report's figures: one PNG each, drawn with matplotlib's Agg backend (files, never a window).

Every function draws one figure into `path` and returns a `Figure` (file name, title, caption)
for the HTML page, or None when its inputs are empty. Colours follow the method everywhere, so a
method looks the same in every figure of one report.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.colors import ListedColormap
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator

from nmoe_sim.report import network as N
from nmoe_sim.report.timeline import node_order
from nmoe_sim.telemetry.summary import MethodSummary

DPI = 120
LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P")


@dataclass(frozen=True)
class Figure:
    """One PNG of the report and the words that go under it."""

    file: str
    title: str
    caption: str


def _save(fig: plt.Figure, path: Path, tight: bool = True) -> None:
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def _listed_colours(name: str) -> list[Any]:
    """The colours of one of matplotlib's listed (qualitative) colour maps."""
    cmap = plt.get_cmap(name)
    assert isinstance(cmap, ListedColormap), f"{name} is not a listed colour map"
    colours = cmap.colors  # a tuple of RGB tuples; the stubs allow any array-like
    assert isinstance(colours, Sequence)
    return list(colours)


def method_colours(methods: Iterable[str]) -> dict[str, Any]:
    """A stable colour per method: the ten strong tab10 colours first, then tab20's light ones."""
    strong = _listed_colours("tab10")
    light = _listed_colours("tab20")[1::2]
    palette = strong + light
    return {m: palette[i % len(palette)] for i, m in enumerate(sorted(set(methods)))}


def lineage(method: str, known: Iterable[str]) -> list[str]:
    """The method and the pipelines it branched from (`nmoe/fedsc/fedgate` -> `nmoe/fedsc`),
    oldest first: a gating method's transfers include its extractor pipeline's."""
    known = set(known)
    parts = method.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts))]
    return [p for p in prefixes if p in known] + [method]


def _legend_outside(ax: plt.Axes, **kwargs: Any) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False, **kwargs)


# --- a run -----------------------------------------------------------------------------------


def accuracy_figure(
    metrics: pd.DataFrame, methods: dict[str, MethodSummary], colours: dict[str, Any], path: Path
) -> Figure | None:
    """Accuracy at each evaluation against simulated time, one line per method.

    Lineage: an NMoE gating method's rows start when its extractor pipeline ends; the pipeline's
    own evaluations (stage 1's temporary head, FedCE only) are drawn dashed under the pipeline's
    name instead of being joined to each gating line, since they score a different model.
    """
    rows = metrics.dropna(subset=["accuracy"])
    if rows.empty and not methods:
        return None
    fig, ax = plt.subplots(figsize=(10, 5.5))
    for method, group in rows.groupby("method", sort=True):
        group = group.sort_values("sim_time_s")
        pipeline = method not in methods
        ax.plot(
            group["sim_time_s"],
            100 * group["accuracy"],
            marker="o",
            markersize=3,
            linestyle="--" if pipeline else "-",
            color=colours.get(str(method), "grey"),
            label=f"{method} (shared stages 1-2)" if pipeline else method,
        )
    drawn = set(rows["method"])
    for method, m in methods.items():
        ax.scatter(
            m.sim_time_s,
            100 * m.accuracy_global,
            marker="*",
            s=110,
            color=colours.get(method, "grey"),
            edgecolors="black",
            linewidths=0.5,
            zorder=3,
            label=None if method in drawn else f"{method} (final only)",
        )
    handles, labels = ax.get_legend_handles_labels()
    handles.append(
        Line2D([], [], marker="*", color="white", markerfacecolor="grey", markeredgecolor="black")
    )
    labels.append("final accuracy_global (summary.json)")
    ax.legend(
        handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False
    )
    ax.set_title("Accuracy on the global test set vs simulated time")
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)
    _save(fig, path)
    return Figure(
        path.name,
        "Accuracy vs simulated time",
        "Each line is one method's evaluations (metrics.csv) on the global balanced test set, "
        "against the simulated clock. NMoE gating methods start where their extractor pipeline "
        "(shared stages 1-2) ended; the pipeline's own evaluations, where it has any (FedCE's "
        "temporary classifier head), are the dashed lines. Stars mark each method's final "
        "accuracy_global from summary.json (the models the clients end with); methods evaluated "
        "only once at the end (own_expert, uniform) appear as a star only.",
    )


def bytes_figure(
    trace: pd.DataFrame, methods: dict[str, MethodSummary], colours: dict[str, Any], path: Path
) -> Figure | None:
    """Cumulative bytes against simulated time per method (lineage included), and per stage."""
    if trace.empty:
        return None
    known = set(trace["method"]) | set(methods)
    own = set(trace["method"])
    drawn = [m for m in methods if m in own] or sorted(own)
    silent = [m for m in methods if m not in own]
    stages = list(dict.fromkeys(trace.sort_values("t_start_s")["stage"].astype(str)))
    stage_colour = dict(zip(stages, _listed_colours("Set2"), strict=False))
    fig, (ax, bx) = plt.subplots(
        1, 2, figsize=(14, 0.3 * len(drawn) + 4.5), gridspec_kw={"width_ratios": [3, 2]}
    )
    pipelines = sorted(own - set(methods))
    for method in [*pipelines, *drawn]:
        parents = lineage(method, known)[:-1]
        before = trace[trace["method"].isin(parents)]
        rows = trace[trace["method"] == method].sort_values("t_end_s")
        start_t = float(before["t_end_s"].max()) if len(before) else 0.0
        start_y = float(before["size_bytes"].sum()) / 1e6
        t = np.concatenate([[start_t], rows["t_end_s"].to_numpy(float)])
        y = start_y + np.concatenate([[0.0], rows["size_bytes"].to_numpy(float).cumsum() / 1e6])
        pipeline = method in pipelines
        ax.step(
            t,
            y,
            where="post",
            color=colours.get(method, "grey"),
            linestyle="--" if pipeline else "-",
            linewidth=2.2 if pipeline else 1.5,
            zorder=3 if pipeline else 2,
            label=f"{method} (shared stages 1-2)" if pipeline else method,
        )
    ax.set_title("Cumulative bytes sent vs simulated time")
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("bytes sent, cumulative (MB)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8, framealpha=0.85)
    for i, method in enumerate(drawn):
        rows = trace[trace["method"].isin(lineage(method, known))]
        per_stage = rows.groupby(rows["stage"].astype(str))["size_bytes"].sum() / 1e6
        left = 0.0
        for stage in stages:
            value = float(per_stage.get(stage, 0.0))
            if value <= 0:
                continue
            bx.barh(i, value, left=left, color=stage_colour.get(stage, "grey"), label=stage)
            left += value
    handles, labels = bx.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    bx.legend(
        unique.values(),
        unique.keys(),
        title="stage",
        fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.1),
        ncol=min(len(unique), 5),
        frameon=False,
    )
    bx.set_yticks(range(len(drawn)), drawn, fontsize=8)
    bx.invert_yaxis()
    bx.set_xlabel("bytes sent (MB)")
    bx.set_title("Bytes per stage")
    bx.grid(axis="x", alpha=0.3)
    _save(fig, path)
    caption = (
        "Left: every byte a method put on the network (trace.csv, summed at each transfer's "
        "end), against the simulated clock. An NMoE extractor pipeline's shared stages 1-2 are "
        "drawn once (dashed, under the pipeline's name); each gating method's line continues "
        "from where its pipeline ended, so its last point is its bytes_total. Right: each "
        "method's total (pipeline included) split by stage."
    )
    if silent:
        caption += (
            " Not drawn, having no transfers of their own (their bytes, if any, are their "
            f"pipeline's): {', '.join(silent)}."
        )
    return Figure(path.name, "Bytes vs simulated time", caption)


def heatmap_figure(heatmaps: dict[str, np.ndarray], path: Path) -> Figure | None:
    """All gating heat maps side by side, on one colour scale."""
    if not heatmaps:
        return None
    n = len(heatmaps)
    ncols = min(5, n)
    nrows = math.ceil(n / ncols)
    clients, experts = next(iter(heatmaps.values())).shape
    cell = 2.6 if max(clients, experts) <= 12 else 3.4
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(cell * ncols + 1.4, cell * nrows + 0.8),
        squeeze=False,
        layout="constrained",
    )
    image = None
    for index, (ax, (method, freq)) in enumerate(zip(axes.flat, heatmaps.items(), strict=False)):
        image = ax.imshow(freq, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_title(method, fontsize=9)
        rows, cols = freq.shape
        if max(rows, cols) <= 12:
            ax.set_xticks(range(cols))
            ax.set_yticks(range(rows))
        ax.tick_params(labelsize=7)
        if index % ncols == 0:
            ax.set_ylabel("client (gate)")
        if index >= n - ncols:
            ax.set_xlabel("expert (hosting client)")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    assert image is not None  # heatmaps is not empty: one image per method
    fig.colorbar(image, ax=axes, shrink=0.8, label="routing frequency")
    fig.suptitle("Gating heat maps: how often each client's gate routes to each expert")
    _save(fig, path, tight=False)
    return Figure(
        path.name,
        "Gating heat maps",
        "Row i, column j: the share of client i's test samples whose gate routes to the expert "
        "hosted by client j (heatmaps/*.csv; rows sum to 1). A bright diagonal means clients "
        "keep to their own expert; spread-out rows mean they use remote experts.",
    )


def _busy_seconds(intervals: Sequence[tuple[float, float]]) -> float:
    """Length of the union of [start, end] intervals."""
    total, cursor = 0.0, -math.inf
    for start, end in sorted(intervals):
        if end > cursor:
            total += end - max(start, cursor)
            cursor = end
    return total


def utilisation(tasks: pd.DataFrame, trace: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per method x node: percent of the method's own simulated span spent computing, and on the
    network (sending or receiving). The span runs from the method's first event to its last."""
    methods = sorted(set(tasks.get("method", [])) | set(trace.get("method", [])))
    nodes = node_order([*tasks.get("node", []), *trace.get("src", []), *trace.get("dst", [])])
    compute = pd.DataFrame(np.nan, index=methods, columns=nodes)
    network = compute.copy()
    for method in methods:
        own_tasks = tasks[tasks["method"] == method] if len(tasks) else tasks
        own_trace = trace[trace["method"] == method] if len(trace) else trace
        starts = [*own_tasks.get("t_start_s", []), *own_trace.get("t_start_s", [])]
        ends = [*own_tasks.get("t_end_s", []), *own_trace.get("t_end_s", [])]
        span = max(ends) - min(starts) if starts else 0.0
        if span <= 0:
            continue
        for node, group in own_tasks.groupby("node") if len(own_tasks) else []:
            spans = list(zip(group["t_start_s"], group["t_end_s"], strict=True))
            compute.loc[method, node] = 100 * _busy_seconds(spans) / span
        for node in nodes:
            if own_trace.empty:
                break
            mask = (own_trace["src"] == node) | (own_trace["dst"] == node)
            if mask.any():
                spans = list(
                    zip(own_trace["t_start_s"][mask], own_trace["t_end_s"][mask], strict=True)
                )
                network.loc[method, node] = 100 * _busy_seconds(spans) / span
    return compute, network


def utilisation_figure(tasks: pd.DataFrame, trace: pd.DataFrame, path: Path) -> Figure | None:
    """Two method x node grids: compute busy % and network busy %."""
    if tasks.empty:
        return None
    compute, network = utilisation(tasks, trace)
    rows, cols = compute.shape
    annotate = rows * cols <= 400
    width = min(0.55 * cols + 3.5, 12)
    fig, axes = plt.subplots(1, 2, figsize=(2 * width, 0.32 * rows + 2.2), layout="constrained")
    image = None
    for ax, frame, what in (
        (axes[0], compute, "computing"),
        (axes[1], network, "on the network (send or receive)"),
    ):
        image = ax.imshow(frame.to_numpy(float), vmin=0, vmax=100, cmap="Blues", aspect="auto")
        ax.set_title(f"Busy {what} (% of the method's span)", fontsize=10)
        ax.set_xlabel("node")
        step = max(1, cols // 25)
        ax.set_xticks(range(0, cols, step), list(frame.columns)[::step], fontsize=7, rotation=90)
        ax.set_yticks(range(rows), list(frame.index), fontsize=7)
        if annotate:
            for (i, j), value in np.ndenumerate(frame.to_numpy(float)):
                if not math.isnan(value):
                    colour = "white" if value > 60 else "black"
                    ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=6, c=colour)
    assert image is not None  # one image per grid, two grids
    fig.colorbar(image, ax=axes, shrink=0.8, label="busy (%)")
    _save(fig, path, tight=False)
    return Figure(
        path.name,
        "Compute and network utilisation per node",
        "For each method (its own rows only: a gating method's span starts when its pipeline "
        "ended) and node: the share of the method's simulated span the node spent running tasks "
        "(tasks.csv), and sending or receiving messages (trace.csv). Blank: the node did "
        "nothing in that method. Transfers on an ideal network take no time and show as 0.",
    )


# --- inference (contract with the serving stage) ---------------------------------------------


def latency_cdf_figure(
    inference: pd.DataFrame, colours: dict[str, Any], path: Path
) -> Figure | None:
    """Empirical CDF of per-query latency, one line per method (inference.csv)."""
    frame = inference.dropna(subset=["latency_ms"])
    if frame.empty:
        return None
    fig, ax = plt.subplots(figsize=(9, 5))
    for method, group in frame.groupby("method", sort=True):
        x = np.sort(group["latency_ms"].to_numpy(float))
        y = 100 * np.arange(0, len(x) + 1) / len(x)
        x = np.concatenate([x[:1], x])  # the curve rises from 0 at the fastest query
        ax.step(x, y, where="post", color=colours.get(str(method), "grey"), label=method)
    positive = frame["latency_ms"][frame["latency_ms"] > 0]
    if len(positive) and positive.max() / positive.min() >= 100:
        ax.set_xscale("log")
    for level in (50, 95, 99):
        ax.axhline(level, color="grey", linewidth=0.6, linestyle=":")
    ax.set_title("Inference latency: share of queries answered within a latency")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("queries answered within (%)")
    ax.set_ylim(0, 101)
    ax.grid(alpha=0.3)
    _legend_outside(ax)
    _save(fig, path)
    return Figure(
        path.name,
        "Inference latency CDF",
        "Empirical CDF of per-query latency (inference.csv), one line per method; the dotted "
        "lines are the 50th, 95th and 99th percentiles.",
    )


def expert_load_figure(
    loads: Mapping[str, Sequence[float]], colours: dict[str, Any], path: Path
) -> Figure | None:
    """Grouped bars: each method's `expert_utilisation` per expert."""
    loads = {m: list(v) for m, v in loads.items() if v}
    if not loads:
        return None
    experts = max(len(v) for v in loads.values())
    fractions = all(0 <= x <= 1 for v in loads.values() for x in v)
    scale = 100.0 if fractions else 1.0
    width = 0.8 / len(loads)
    # Capped like every figure here: beyond a few dozen experts the bars are a profile, not labels.
    inches = min(24.0, max(7.0, 0.5 * experts * max(1, len(loads) / 3) + 4))
    fig, ax = plt.subplots(figsize=(inches, 4.8))
    for k, (method, values) in enumerate(loads.items()):
        x = np.arange(len(values)) - 0.4 + width * (k + 0.5)
        ax.bar(x, scale * np.asarray(values, float), width, color=colours.get(method), label=method)
    if experts <= 40:
        ax.set_xticks(range(experts))
    ax.set_xlabel("expert (hosting client)")
    ax.set_ylabel("utilisation (%)" if fractions else "utilisation")
    ax.set_title("Inference: load on each expert")
    ax.grid(axis="y", alpha=0.3)
    _legend_outside(ax)
    _save(fig, path)
    return Figure(
        path.name,
        "Expert load at inference",
        "Each method's expert_utilisation from summary.json's inference entry, per expert: an "
        "even load means the gate spreads queries; a few tall bars mean hot-spot experts.",
    )


# --- a sweep ---------------------------------------------------------------------------------

# column -> (what, unit, scale applied to the values)
SWEEP_FIGURES: dict[str, tuple[str, str, float]] = {
    "accuracy_global": ("accuracy on the global test set", "%", 100.0),
    "accuracy_local": ("accuracy on the clients' own test splits", "%", 100.0),
    "bytes_total": ("bytes sent", "MB", 1e-6),
    "sim_time_s": ("simulated time", "s", 1.0),
    "inference_latency_p99_ms": ("inference p99 latency", "ms", 1.0),
    "inference_accuracy": ("inference accuracy", "%", 100.0),
}
KEY_UNITS = (
    ("_mbps", "Mbps"),
    ("_ms", "ms"),
    ("_gflops", "GFLOP/s"),
    ("_s", "s"),
)


def swept_keys(table: pd.DataFrame) -> list[str]:
    """sweep.csv's layout: point, the swept keys, method, the figures."""
    columns = list(table.columns)
    if "method" not in columns:
        return []
    first = columns.index("point") + 1 if "point" in columns else 0
    return columns[first : columns.index("method")]


def key_label(key: str) -> str:
    """`network.bandwidth_mbps` -> `network.bandwidth_mbps (Mbps)`."""
    for suffix, unit in KEY_UNITS:
        if key.endswith(suffix):
            return f"{key} ({unit})"
    return key


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def sweep_figure_name(figure: str, key: str) -> str:
    return f"sweep_{figure}_vs_{_slug(key)}.png"


def _is_numeric(values: pd.Series) -> bool:
    return (
        bool(len(values)) and pd.api.types.is_numeric_dtype(values) and bool(values.notna().all())
    )


def _format_value(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def sweep_figures(table: pd.DataFrame, folder: Path) -> list[tuple[str, Figure]]:
    """For each swept key and each figure column present: the figure against the key, one line
    per method. Other swept keys become line styles (up to three combinations) or panels."""
    keys = swept_keys(table)
    figures = [f for f in SWEEP_FIGURES if f in table.columns and table[f].notna().any() and keys]
    methods = list(dict.fromkeys(table["method"])) if "method" in table.columns else []
    colours = method_colours(methods)
    out = []
    for figure in figures:
        for key in keys:
            path = folder / sweep_figure_name(figure, key)
            out.append((key, _sweep_figure(table, figure, key, keys, methods, colours, path)))
    return out


def _sweep_figure(
    table: pd.DataFrame,
    figure: str,
    key: str,
    keys: Sequence[str],
    methods: Sequence[str],
    colours: dict[str, Any],
    path: Path,
) -> Figure:
    what, unit, scale = SWEEP_FIGURES[figure]
    others = [k for k in keys if k != key]
    combos: list[tuple[Any, ...]] = (
        list(dict.fromkeys(table[others].itertuples(index=False, name=None))) if others else [()]
    )
    numeric = _is_numeric(table[key])
    values = list(dict.fromkeys(table[key]))
    if numeric:
        values = sorted(values)
    position = {v: (float(v) if numeric else i) for i, v in enumerate(values)}
    panels = combos if len(combos) > 3 else [None]
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(5.2 * ncols + 3, 3.8 * nrows + 0.6), squeeze=False, sharey=True
    )
    for ax, panel in zip(axes.flat, panels, strict=False):
        lined = combos if panel is None else [panel]
        for c, combo in enumerate(lined):
            mask = np.ones(len(table), dtype=bool)
            for other, value in zip(others, combo, strict=True):
                mask &= (table[other] == value).to_numpy()
            for method in methods:
                rows = table[mask & (table["method"] == method).to_numpy()]
                if rows.empty:
                    continue
                series = rows.groupby(key, sort=False)[figure].mean()
                x = [position[v] for v in series.index]
                order = np.argsort(x)
                label = method
                if panel is None and others:
                    label += ", " + ", ".join(
                        f"{o.split('.')[-1]}={_format_value(v)}"
                        for o, v in zip(others, combo, strict=True)
                    )
                ax.plot(
                    np.asarray(x)[order],
                    scale * series.to_numpy(float)[order],
                    color=colours[method],
                    linestyle=LINESTYLES[c % len(LINESTYLES)],
                    marker=MARKERS[c % len(MARKERS)],
                    label=label,
                )
        xs = [position[v] for v in values]
        if _log_x(values, numeric):
            ax.set_xscale("log")
            ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticks(xs, [_format_value(v) for v in values])
        ax.set_xlabel(key_label(key))
        ax.grid(alpha=0.3)
        if panel is not None:
            ax.set_title(
                ", ".join(f"{o}={_format_value(v)}" for o, v in zip(others, panel, strict=True)),
                fontsize=9,
            )
    for ax in axes[:, 0]:
        ax.set_ylabel(f"{what} ({unit})")
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    _legend_outside(axes[0, -1])
    fig.suptitle(f"{what.capitalize()} vs {key}")
    _save(fig, path)
    styles = ""
    if others and len(combos) <= 3:
        styles = f" Line styles tell the values of {', '.join(others)} apart."
    elif others:
        styles = f" One panel per combination of {', '.join(others)}."
    return Figure(
        path.name,
        f"{figure} vs {key}",
        f"{what.capitalize()} ({unit}, sweep.csv column {figure}) for each value of {key}, one "
        f"line per method.{styles}"
        + (" Logarithmic x axis: the values span 100x or more." if _log_x(values, numeric) else ""),
    )


def _log_x(values: Sequence[Any], numeric: bool) -> bool:
    if not numeric:
        return False
    xs = [float(v) for v in values]
    return min(xs) > 0 and max(xs) / min(xs) >= 100


# --- a moving network (positions.csv, links.csv, events.csv) ---------------------------------

MAX_ACCESS_PANELS = 36  # clients beyond this are left out of the access rate figure (said so)


def client_colours(clients: Iterable[str]) -> dict[str, Any]:
    """A colour per client in node order: tab10 up to ten clients, then tab20's twenty."""
    ordered = node_order(clients)
    palette = _listed_colours("tab10" if len(ordered) <= 10 else "tab20")
    return {c: palette[i % len(palette)] for i, c in enumerate(ordered)}


def _box(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float, float]:
    """(x_min, x_max, y_min, y_max) around the points with a margin."""
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    pad = max(0.08 * max(x1 - x0, y1 - y0), 5.0)
    return x0 - pad, x1 + pad, y0 - pad, y1 + pad


def positions_figure(
    positions: pd.DataFrame, handovers: pd.DataFrame | None, path: Path
) -> Figure | None:
    """Base stations, their cells (nearest station) and each client's track over the run."""
    sites = N.stations(positions)
    paths = N.tracks(positions)
    if not sites and not paths:
        return None
    xs = [x for x, _ in sites.values()] + [x for p in paths.values() for x in p["x_m"]]
    ys = [y for _, y in sites.values()] + [y for p in paths.values() for y in p["y_m"]]
    box = _box(xs, ys)
    x0, x1, y0, y1 = box
    height = float(np.clip(7.5 * (y1 - y0) / (x1 - x0), 3.5, 9.0))
    fig, ax = plt.subplots(figsize=(10, height + 1.0))
    if len(sites) >= 2:
        gx, gy = np.meshgrid(np.linspace(x0, x1, 400), np.linspace(y0, y1, 400))
        shades = _listed_colours("Pastel1" if len(sites) <= 9 else "Pastel2")
        cells = N.nearest_station(sites, gx, gy) % len(shades)
        ax.imshow(
            cells,
            extent=(x0, x1, y0, y1),
            origin="lower",
            cmap=ListedColormap(shades),
            vmin=-0.5,
            vmax=len(shades) - 0.5,
            alpha=0.45,
            interpolation="nearest",
            zorder=0,
        )
        for (ax_, ay), (bx, by) in N.cell_edges(sites, box):
            ax.plot([ax_, bx], [ay, by], color="dimgrey", linewidth=1.0, zorder=1)
    colours = client_colours(paths)
    for client in node_order(paths):
        track = paths[client]
        colour = colours[client]
        ax.plot(track["x_m"], track["y_m"], color=colour, linewidth=1.4, label=client, zorder=2)
        first, last = track.iloc[0], track.iloc[-1]
        ax.scatter(first["x_m"], first["y_m"], marker="o", s=36, color=colour, zorder=3)
        ax.scatter(
            last["x_m"], last["y_m"], marker="s", s=36, color=colour, edgecolors="k", zorder=3
        )
    moved = 0
    if handovers is not None:
        for t, node in zip(handovers["t_s"], handovers["node"], strict=True):
            if str(node) in paths:
                x, y = N.position_at(paths[str(node)], float(t))
                ax.scatter(
                    x, y, marker="X", s=60, color=colours[str(node)], edgecolors="k", zorder=4
                )
                moved += 1
    for name, (x, y) in sites.items():
        ax.scatter(x, y, marker="^", s=140, color="black", zorder=5)
        ax.annotate(
            name,
            (x, y),
            xytext=(0, 9),
            textcoords="offset points",
            ha="center",
            fontsize=9,
            fontweight="bold",
            zorder=6,
        )
    handles, labels = ax.get_legend_handles_labels()
    if len(paths) > 20:  # a colour per client still, but no list of names
        handles, labels = [], []
    keys = [
        ("^", "black", "base station"),
        ("o", "grey", "track start"),
        ("s", "grey", "track end"),
        ("X", "grey", "handover"),
    ]
    for marker, colour, label in keys[: 4 if moved else 3]:
        handles.append(Line2D([], [], marker=marker, color=colour, linestyle="", markersize=7))
        labels.append(label)
    ax.legend(
        handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False
    )
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_title("Base stations, their cells and the clients' tracks")
    _save(fig, path)
    caption = (
        "Base stations (triangles) and the clients' tracks over the run (positions.csv): each "
        "client moves in a straight line from one point of its track to the next, from the "
        "circle to the square. The shading and the grey lines are the cells at equal transmit "
        "power (every point served by its nearest base station). "
    )
    if moved:
        caption += (
            "Crosses mark where a client was at each handover (events.csv); handovers follow the "
            "measured signal (with the scenario's hysteresis, time to trigger and shadowing), so "
            "they come some way from the drawn boundary."
        )
    return Figure(path.name, "Client positions and cells", caption.strip())


def _spans(rows: pd.DataFrame) -> list[tuple[str, float, float]]:
    """(station, start, end) of a client's consecutive steps at one station."""
    out: list[tuple[str, float, float]] = []
    for station, t, end in zip(rows["station"], rows["t_s"], rows["t_end_s"], strict=True):
        if out and out[-1][0] == station and out[-1][2] == t:
            out[-1] = (station, out[-1][1], float(end))
        else:
            out.append((str(station), float(t), float(end)))
    return out


def access_rate_figure(
    steps: pd.DataFrame, handovers: pd.DataFrame | None, end_s: float, path: Path
) -> Figure | None:
    """Small multiples, one panel per client: its downlink and uplink access rates over time,
    shaded by the base station serving it, handovers as dashed ticks."""
    if steps.empty:
        return None
    clients = node_order(steps["client"].astype(str))
    shown = clients[:MAX_ACCESS_PANELS]
    n = len(shown)
    ncols = 1 if n <= 12 else 2 if n <= 24 else 3
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(11 if ncols == 1 else 6.5 * ncols, 1.15 * nrows + 1.4),
        sharex=True,
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    station_names = node_order(steps["station"].astype(str))
    shades = _listed_colours("Pastel1" if len(station_names) <= 9 else "Pastel2")
    station_colour = {s: shades[i % len(shades)] for i, s in enumerate(station_names)}
    line = {"down": ("tab:blue", "downlink (base station → client)")}
    line["up"] = ("tab:orange", "uplink (client → base station)")
    ticks = 0
    for index, client in enumerate(shown):
        ax = axes[index % nrows, index // nrows]
        own = steps[steps["client"] == client]
        for direction in N.DIRECTIONS:
            rows = own[own["direction"] == direction]
            if rows.empty:
                continue
            t = np.append(rows["t_s"].to_numpy(float), float(rows["t_end_s"].iloc[-1]))
            y = rows["bandwidth_mbps"].to_numpy(float)
            colour, label = line[direction]
            ax.step(t, np.append(y, y[-1]), where="post", color=colour, linewidth=1.1, label=label)
        serving = own[own["direction"] == "down"]
        for station, a, b in _spans(serving if len(serving) else own):
            ax.axvspan(a, b, color=station_colour[station], alpha=0.6, linewidth=0, zorder=0)
        if handovers is not None:
            for t_h, target in zip(
                handovers["t_s"][handovers["node"] == client],
                handovers["target"][handovers["node"] == client],
                strict=True,
            ):
                ax.axvline(float(t_h), color="black", linewidth=0.9, linestyle="--")
                ax.text(
                    float(t_h),
                    0.97,
                    f" → {target}",
                    transform=ax.get_xaxis_transform(),
                    fontsize=7,
                    va="top",
                )
                ticks += 1
        ax.set_ylabel(client, rotation=0, ha="right", va="center", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.set_xlim(0, end_s)
        ax.set_ylim(bottom=0)
    for ax in list(axes.T.flat)[n:]:
        ax.set_visible(False)
    for column in range(ncols):  # the lowest panel of each column shows the time axis
        last = min(nrows, n - column * nrows) - 1
        if last >= 0:
            axes[last, column].xaxis.set_tick_params(labelbottom=True)
    handles: list[Artist] = [Line2D([], [], color=c, label=label) for c, label in line.values()]
    if ticks:
        handles.append(Line2D([], [], color="black", linestyle="--", label="handover"))
    handles += [
        plt.Rectangle((0, 0), 1, 1, color=station_colour[s], alpha=0.6, label=f"served by {s}")
        for s in station_names
    ]
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    fig.supxlabel("simulated time (s)", fontsize=10)
    fig.supylabel("access rate (Mbit/s)", fontsize=10)
    fig.suptitle("Each client's access rate over the run")
    _save(fig, path, tight=False)
    caption = (
        "One panel per client: the rate of its downlink and uplink (links.csv bandwidth_mbps) "
        "over simulated time, each value holding until the next; the rows of the client's "
        "links to successive base stations are joined in time order, and the shading tells "
        "which base station served it. Where clients share a cell they share its airtime, so a "
        "transfer gets at most this rate."
    )
    if ticks:
        caption += " Dashed ticks are the client's handovers (events.csv), with the new station."
    if len(clients) > len(shown):
        caption += f" The first {len(shown)} of {len(clients)} clients are shown."
    return Figure(path.name, "Access rate per client", caption)


def round_handover_figure(
    counts: pd.DataFrame, colours: dict[str, Any], path: Path
) -> Figure | None:
    """Each round's duration against the handovers during it, one colour per method."""
    if counts.empty:
        return None
    methods = list(dict.fromkeys(counts["method"]))
    spread = min(0.6 / len(methods), 0.12)
    fig, ax = plt.subplots(figsize=(10, 5))
    for i, method in enumerate(methods):
        rows = counts[counts["method"] == method]
        ax.scatter(
            rows["handovers"] + (i - (len(methods) - 1) / 2) * spread,
            rows["duration_s"],
            s=30,
            color=colours.get(method, "grey"),
            edgecolors="black",
            linewidths=0.3,
            label=method,
            zorder=3,
        )
    means = counts.groupby("handovers")["duration_s"].mean()
    for k, mean in zip(means.index.to_numpy(float), means.to_numpy(float), strict=True):
        ax.hlines(mean, k - 0.4, k + 0.4, color="black", linewidth=1.6, zorder=2)
    top = int(counts["handovers"].max())
    ax.set_xticks(range(top + 1))
    ax.set_xlim(-0.6, top + 0.6)
    ax.set_xlabel("handovers during the round")
    ax.set_ylabel("round time (s)")
    ax.set_title("Round time against the handovers during the round")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], color="black", linewidth=1.6))
    labels.append("mean of all rounds with that count")
    ax.legend(
        handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False
    )
    _save(fig, path)
    return Figure(
        path.name,
        "Round time against handovers",
        "Each dot is one round of rounds.csv: its duration (t_end_s - t_start_s) against the "
        "handovers of its method's span (events.csv) with a time within the round, methods side "
        "by side around each count. A pipeline of shared stages (e.g. nmoe/fedsc) counts the "
        "handovers its gating methods' spans share with it.",
    )
