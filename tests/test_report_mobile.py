"""`nmoe-sim report` on a network that moves: events.csv, links.csv, positions.csv (and rounds.csv
beside them). A small run is written by hand, so every access rate, handover, round count,
counter and cell boundary below is known exactly.

The hand-written run (make_run's methods fedavg, ending at 2.25 s, and nmoe/fedsc/fedgate, at
3.5 s; two base stations 60 m apart): client c0 walks from bs0's cell into bs1's (handover at
1.25 s, at x = 35 m) and back (3.25 s, x = 35 m again); c1 stays in bs1's cell.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from nmoe_sim.report import ReportError, build_report
from nmoe_sim.report import network as N
from nmoe_sim.report.figures import access_rate_figure
from nmoe_sim.report.timeline import chrome_trace_events
from nmoe_sim.telemetry.schema import (
    EventRecord,
    LinkStateRecord,
    PositionRecord,
    RoundRecord,
    columns,
    row,
)
from tests.test_report import TASKS, TRACE, _check_pngs_linked, _summary, make_run

NETWORK_PNGS = {"network_positions.png", "network_access_rate.png", "network_round_handovers.png"}

POSITIONS = [
    PositionRecord("bs0", "station", 0.0, 0.0, 0.0),
    PositionRecord("bs1", "station", 0.0, 60.0, 0.0),
    PositionRecord("c0", "client", 0.0, 10.0, 0.0),
    PositionRecord("c0", "client", 2.0, 50.0, 0.0),  # 20 m/s: x = 35 at 1.25 s
    PositionRecord("c0", "client", 3.0, 50.0, 0.0),
    PositionRecord("c0", "client", 3.5, 20.0, 0.0),  # back: x = 35 at 3.25 s
    PositionRecord("c1", "client", 0.0, 55.0, 5.0),
    PositionRecord("c1", "client", 3.5, 55.0, 5.0),
]
OUT = EventRecord(1.25, "handover", "c0", "bs0", "bs1")
BACK = EventRecord(3.25, "handover", "c0", "bs1", "bs0")
EVENTS = [("fedavg", OUT), ("nmoe/fedsc/fedgate", OUT), ("nmoe/fedsc/fedgate", BACK)]
LINKS = [
    LinkStateRecord("bs0>c0", 0.0, 10.0, 10.0, 0.0),
    LinkStateRecord("bs0>c0", 1.0, 12.0, 10.0, 0.0),
    LinkStateRecord("bs0>c0", 3.25, 11.0, 10.0, 0.0),  # attached again after the way back
    LinkStateRecord("bs0>cloud", 0.0, 1000.0, 5.0, 0.0),  # backhaul: a counter, no client's
    LinkStateRecord("bs0>cloud", 2.0, 500.0, 5.0, 0.0),
    LinkStateRecord("bs1>c0", 1.25, 30.0, 10.0, 0.0),
    LinkStateRecord("bs1>c0", 2.0, 25.0, 10.0, 0.0),
    LinkStateRecord("bs1>c1", 0.0, 40.0, 10.0, 0.0),
    LinkStateRecord("c0>bs0", 0.0, 5.0, 10.0, 0.0),
    LinkStateRecord("c0>bs0", 3.25, 6.0, 10.0, 0.0),
    LinkStateRecord("c0>bs1", 1.25, 8.0, 10.0, 0.0),
    LinkStateRecord("c1>bs1", 0.0, 20.0, 10.0, 0.0),
]
ROUNDS = [
    ("fedavg", RoundRecord("fedavg", 0, 0.0, 1.0, 2, 2, "all")),  # no handover
    ("fedavg", RoundRecord("fedavg", 1, 1.0, 2.25, 2, 2, "all")),  # 1.25
    # a pipeline has no events.csv rows of its own: its gating method's span holds 1.25
    ("nmoe/fedsc", RoundRecord("extractor", 0, 0.0, 1.5, 2, 2, "all")),
    ("nmoe/fedsc/fedgate", RoundRecord("gate", 0, 2.0, 3.0, 2, 2, "all")),  # none
    ("nmoe/fedsc/fedgate", RoundRecord("gate", 1, 3.0, 3.25, 2, 2, "all")),  # 3.25: the end counts
]


def _frame(records: list[Any], record_type: type, method: bool = False) -> pd.DataFrame:
    if method:
        return pd.DataFrame([row(m, r) for m, r in records], columns=list(columns(record_type)))
    return pd.DataFrame([r.__dict__ for r in records], columns=list(columns(record_type))[1:])


def events_frame() -> pd.DataFrame:
    return _frame(EVENTS, EventRecord, method=True)


def links_frame() -> pd.DataFrame:
    return _frame(LINKS, LinkStateRecord)


def rounds_frame() -> pd.DataFrame:
    return _frame(ROUNDS, RoundRecord, method=True)


def make_mobile_run(root: Path) -> Path:
    run = make_run(root)
    summary = _summary(False)
    summary["methods"]["fedavg"]["handovers"] = 1
    summary["methods"]["nmoe/fedsc/fedgate"]["handovers"] = 2
    (run / "summary.json").write_text(json.dumps(summary))
    events_frame().to_csv(run / "events.csv", index=False)
    links_frame().to_csv(run / "links.csv", index=False)
    _frame(POSITIONS, PositionRecord).to_csv(run / "positions.csv", index=False)
    rounds_frame().to_csv(run / "rounds.csv", index=False)
    return run


# --- the tables, by hand ---------------------------------------------------------------------


def test_round_handovers_counted_by_hand() -> None:
    counts = N.round_handovers(rounds_frame(), events_frame())
    got = list(counts.itertuples(index=False, name=None))
    assert got == [
        ("fedavg", "fedavg", 0, 1.0, 0),
        ("fedavg", "fedavg", 1, 1.25, 1),
        ("nmoe/fedsc", "extractor", 0, 1.5, 1),
        ("nmoe/fedsc/fedgate", "gate", 0, 1.0, 0),
        ("nmoe/fedsc/fedgate", "gate", 1, 0.25, 1),
    ]
    table = N.round_time_table(counts)
    assert table.to_dict("records") == [
        {
            "method": "fedavg",
            "rounds": "2",
            "rounds with a handover": "1",
            "mean round time without (s)": "1.000",
            "mean round time with (s)": "1.250",
        },
        {
            "method": "nmoe/fedsc",
            "rounds": "1",
            "rounds with a handover": "1",
            "mean round time without (s)": "",
            "mean round time with (s)": "1.500",
        },
        {
            "method": "nmoe/fedsc/fedgate",
            "rounds": "2",
            "rounds with a handover": "1",
            "mean round time without (s)": "1.000",
            "mean round time with (s)": "0.250",
        },
    ]


def test_handover_timeline_is_the_longest_methods() -> None:
    timeline = N.handover_timeline(events_frame())
    assert list(timeline.itertuples(index=False, name=None)) == [
        (1.25, "c0", "bs0", "bs1"),
        (3.25, "c0", "bs1", "bs0"),
    ]


def test_access_steps_join_a_clients_stations_in_time_order() -> None:
    links = links_frame()
    steps = N.access_steps(links, N.client_names(links, None, None), 3.5)
    assert set(steps["client"]) == {"c0", "c1"}  # bs0>cloud is nobody's access link
    down = steps[(steps["client"] == "c0") & (steps["direction"] == "down")]
    assert list(zip(down.station, down.t_s, down.t_end_s, down.bandwidth_mbps, strict=True)) == [
        ("bs0", 0.0, 1.0, 10.0),
        ("bs0", 1.0, 1.25, 12.0),
        ("bs1", 1.25, 2.0, 30.0),
        ("bs1", 2.0, 3.25, 25.0),
        ("bs0", 3.25, 3.5, 11.0),  # the last holds until the run's end
    ]
    up = steps[(steps["client"] == "c0") & (steps["direction"] == "up")]
    assert list(zip(up.link, up.t_s, up.t_end_s, strict=True)) == [
        ("c0>bs0", 0.0, 1.25),
        ("c0>bs1", 1.25, 3.25),
        ("c0>bs0", 3.25, 3.5),
    ]
    means = N.time_weighted_means(steps)
    c0_down = (10 * 1 + 12 * 0.25 + 30 * 0.75 + 25 * 1.25 + 11 * 0.25) / 3.5
    c0_up = (5 * 1.25 + 8 * 2.0 + 6 * 0.25) / 3.5
    assert means["down"] == pytest.approx((c0_down + 40.0) / 2)
    assert means["up"] == pytest.approx((c0_up + 20.0) / 2)


def test_clients_named_by_positions_or_events_are_clients() -> None:
    links = pd.DataFrame({"link": ["ue7>bs0", "bs0>ue7", "bs0>bs1"], "t_s": [0.0] * 3})
    positions = pd.DataFrame({"node": ["ue7"], "role": ["client"]})
    assert N.client_names(links, None, positions) == {"ue7"}
    clients = N.client_names(links, None, positions)
    assert N.access_link("ue7>bs0", clients) == ("ue7", "up", "bs0")
    assert N.access_link("bs0>ue7", clients) == ("ue7", "down", "bs0")
    assert N.access_link("bs0>bs1", clients) is None
    assert N.access_link("c1>c2", clients) is None  # device to device


def test_cell_edges_by_hand() -> None:
    two = N.cell_edges({"bs0": (0.0, 0.0), "bs1": (60.0, 0.0)}, (-10.0, 70.0, -20.0, 20.0))
    assert len(two) == 1
    assert sorted(two[0]) == [pytest.approx((30.0, -20.0)), pytest.approx((30.0, 20.0))]

    # Three stations: the bisectors meet at the circumcentre (30, 30).
    sites = {"a": (0.0, 0.0), "b": (60.0, 0.0), "c": (0.0, 60.0)}
    edges = {
        tuple(sorted(map(tuple, np.round(e, 9)))) for e in N.cell_edges(sites, (-10, 70, -10, 70))
    }
    assert edges == {
        ((30.0, -10.0), (30.0, 30.0)),  # a | b
        ((-10.0, 30.0), (30.0, 30.0)),  # a | c
        ((30.0, 30.0), (70.0, 70.0)),  # b | c, along y = x
    }
    # Beside each edge, the nearest stations are the edge's two.
    idx = N.nearest_station(sites, np.array([29.0, 31.0, 20.0]), np.array([10.0, 10.0, 40.0]))
    assert list(idx) == [0, 1, 2]


def test_handovers_drawn_where_the_client_was() -> None:
    frame = _frame(POSITIONS, PositionRecord)
    track = N.tracks(frame)["c0"]
    assert N.position_at(track, 1.25) == pytest.approx((35.0, 0.0))
    assert N.position_at(track, 3.25) == pytest.approx((35.0, 0.0))
    assert N.stations(frame) == {"bs0": (0.0, 0.0), "bs1": (60.0, 0.0)}


# --- the timeline ----------------------------------------------------------------------------


def test_timeline_counters_follow_links_csv_and_instants_the_handovers() -> None:
    events = chrome_trace_events(TASKS, TRACE, events_frame(), links_frame())
    processes = {e["args"]["name"]: e["pid"] for e in events if e["name"] == "process_name"}
    tracks = {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e["name"] == "thread_name"}
    methods = {"fedavg", "nmoe/fedsc", "nmoe/fedsc/fedgate"}
    assert set(processes) == {*methods, "network (links.csv)"}
    network = processes["network (links.csv)"]
    assert network == len(methods) + 1

    counters = [e for e in events if e["ph"] == "C"]
    assert all(e["pid"] == network and e["cat"] == "network" for e in counters)
    got = sorted((e["name"], e["ts"], e["args"]["Mbit/s"]) for e in counters)
    want = [(r.link, r.t_s * 1e6, r.bandwidth_mbps) for r in LINKS]
    # c0's access links end when it moves: their counters drop to 0 then
    want += [
        ("bs0>c0", 1_250_000.0, 0),
        ("c0>bs0", 1_250_000.0, 0),
        ("bs1>c0", 3_250_000.0, 0),
        ("c0>bs1", 3_250_000.0, 0),
    ]
    assert got == sorted(want)

    instants = [e for e in events if e["ph"] == "i"]
    by_pid = {pid: name for name, pid in processes.items()}
    assert sorted(
        (by_pid[e["pid"]], tracks[(e["pid"], e["tid"])], e["ts"], e["s"], e["name"], e["args"])
        for e in instants
    ) == sorted(
        (
            m,
            r.node,
            r.t_s * 1e6,
            "t",
            f"handover {r.source} → {r.target}",
            {"source": r.source, "target": r.target},
        )
        for m, r in EVENTS
    )
    json.dumps(events, allow_nan=False)


def test_timeline_gives_a_moving_client_a_track_where_it_did_nothing() -> None:
    moved = pd.DataFrame([row("only_moves", OUT)], columns=list(columns(EventRecord)))
    events = chrome_trace_events(pd.DataFrame(), pd.DataFrame(), moved, None)
    (instant,) = [e for e in events if e["ph"] == "i"]
    (track,) = [e for e in events if e["name"] == "thread_name"]
    (process,) = [e for e in events if e["name"] == "process_name"]
    assert (instant["pid"], instant["tid"]) == (track["pid"], track["tid"])
    assert (track["args"]["name"], process["args"]["name"]) == ("c0", "only_moves")
    assert not [e for e in events if e["ph"] == "C"]  # no links.csv, no counters


def test_timeline_without_network_tables_is_what_it_was() -> None:
    before = chrome_trace_events(TASKS, TRACE)
    assert chrome_trace_events(TASKS, TRACE, None, None) == before
    assert {e["ph"] for e in before} == {"M", "X"}
    assert not [e for e in before if e.get("args", {}).get("name") == "network (links.csv)"]


# --- the report ------------------------------------------------------------------------------


def test_mobile_report_draws_the_network_section(tmp_path: Path) -> None:
    run = make_mobile_run(tmp_path)
    report = build_report(run)
    pngs, html = _check_pngs_linked(report)
    assert pngs == {"accuracy.png", "bytes.png", "gating.png", "utilisation.png", *NETWORK_PNGS}
    section = html[html.index("<h2>Mobile network</h2>") : html.index("<h2>Timeline</h2>")]
    text = " ".join(re.sub(r"<[^>]+>", " ", section).split())
    assert "Handovers per method: 1 (fedavg); 2 (nmoe/fedsc/fedgate)." in text
    down = ((10 + 3 + 22.5 + 31.25 + 2.75) / 3.5 + 40) / 2  # 29.93
    up = ((6.25 + 16 + 1.5) / 3.5 + 20) / 2  # 13.39
    assert f"downlink {down:.1f} Mbit/s, uplink {up:.1f} Mbit/s" in text
    assert "over 2 clients" in text
    # the table of mean round times (the hand counts above)
    assert "fedavg 2 1 1.000 1.250" in text
    assert "nmoe/fedsc 1 1 1.500" in text
    assert "nmoe/fedsc/fedgate 2 1 1.000 0.250" in text
    assert "instant event on the moving client" in html
    assert 'href="../links.csv"' in html and 'href="../positions.csv"' in html

    trace = json.loads((report / "timeline.json").read_text())["traceEvents"]
    assert sum(e["ph"] == "C" for e in trace) == len(LINKS) + 4
    assert sum(e["ph"] == "i" for e in trace) == len(EVENTS)


def test_a_run_without_the_network_tables_has_no_network_section(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    # rounds.csv is read only beside events.csv: a static run's report reads what it always did
    (run / "rounds.csv").write_text("not, a, rounds table\n")
    pngs, html = _check_pngs_linked(build_report(run))
    assert not pngs & NETWORK_PNGS
    assert "Mobile network" not in html and "network (links.csv)" not in html
    trace = json.loads((run / "report" / "timeline.json").read_text())["traceEvents"]
    assert {e["ph"] for e in trace} == {"M", "X"}


@pytest.mark.parametrize(
    ("removed", "missing_png", "note"),
    [
        ("positions.csv", "network_positions.png", "No positions figure: the run has no"),
        ("links.csv", "network_access_rate.png", "No access rate figure: the run has no"),
        ("events.csv", "network_round_handovers.png", "the run has no events.csv"),
        ("rounds.csv", "network_round_handovers.png", "rounds.csv has no rounds"),
    ],
)
def test_each_network_figure_only_with_its_files(
    tmp_path: Path, removed: str, missing_png: str, note: str
) -> None:
    run = make_mobile_run(tmp_path)
    (run / removed).unlink()
    if removed == "rounds.csv":  # (an empty table: no rounds)
        pd.DataFrame(columns=list(columns(RoundRecord))).to_csv(run / removed, index=False)
    pngs, html = _check_pngs_linked(build_report(run))
    assert pngs & NETWORK_PNGS == NETWORK_PNGS - {missing_png}
    assert note in html
    trace = json.loads((run / "report" / "timeline.json").read_text())["traceEvents"]
    counters = sum(e["ph"] == "C" for e in trace)
    instants = sum(e["ph"] == "i" for e in trace)
    assert counters == (0 if removed == "links.csv" else len(LINKS) + 4)
    assert instants == (0 if removed == "events.csv" else len(EVENTS))


def test_access_rate_figure_of_many_clients_keeps_a_bounded_canvas(tmp_path: Path) -> None:
    rows = [
        (f"c{i}", d, "bs0", f"x{i}{d}", t, t + 1.0, 10.0 + i + t)
        for i in range(40)
        for d in N.DIRECTIONS
        for t in (0.0, 1.0)
    ]
    steps = pd.DataFrame(rows, columns=N.STEP_COLUMNS)
    few = steps[steps["client"].isin([f"c{i}" for i in range(10)])]
    ten = access_rate_figure(few, None, 2.0, tmp_path / "ten.png")
    assert ten is not None and "first" not in ten.caption
    many = access_rate_figure(steps, None, 2.0, tmp_path / "many.png")
    assert many is not None and "The first 36 of 40 clients are shown." in many.caption
    header = (tmp_path / "many.png").read_bytes()[:24]
    height = int.from_bytes(header[20:24], "big")
    assert height <= (1.15 * 12 + 1.4) * 120 + 1  # 36 panels in three columns of 12


# --- refusals --------------------------------------------------------------------------------


def _edit(run: Path, name: str, line: int, column: str, value: str) -> None:
    frame = pd.read_csv(run / name, dtype=str, keep_default_na=False)
    frame.loc[line - 2, column] = value
    frame.to_csv(run / name, index=False)


@pytest.mark.parametrize(
    ("name", "line", "column", "value", "message"),
    [
        ("links.csv", 3, "bandwidth_mbps", "fast", "line 3: bandwidth_mbps must be a finite num"),
        ("links.csv", 4, "bandwidth_mbps", "-1", "line 4: bandwidth_mbps must be 0 or more"),
        ("links.csv", 2, "link", "c0-bs0", "line 2: link must be 'u>v'"),
        ("links.csv", 5, "latency_ms", "", "line 5 has no latency_ms"),
        ("positions.csv", 3, "role", "tower", "line 3: role must be 'station' or 'client'"),
        ("positions.csv", 6, "x_m", "", "line 6 has no x_m"),
        ("positions.csv", 2, "t_s", "-3", "line 2: t_s must be a time of the run"),
        ("events.csv", 2, "t_s", "soon", "line 2: t_s must be a finite number, got 'soon'"),
        ("events.csv", 4, "target", "", "line 4 has no target"),
        ("events.csv", 3, "node", "", "line 3 has no node"),
    ],
)
def test_malformed_network_tables_refused_naming_file_line_and_column(
    tmp_path: Path, name: str, line: int, column: str, value: str, message: str
) -> None:
    run = make_mobile_run(tmp_path)
    _edit(run, name, line, column, value)
    with pytest.raises(ReportError) as caught:
        build_report(run)
    assert str(caught.value).startswith(f"{run / name}: "), caught.value
    assert message in str(caught.value)
    assert not (run / "report").exists()


@pytest.mark.parametrize("name", ["events.csv", "links.csv", "positions.csv"])
def test_network_tables_cut_short_or_missing_a_column_refused(tmp_path: Path, name: str) -> None:
    run = make_mobile_run(tmp_path)
    text = (run / name).read_text()
    (run / name).write_text(text[:-3])
    with pytest.raises(ReportError, match="cut short"):
        build_report(run)
    frame = pd.read_csv(io.StringIO(text))
    frame.drop(columns=["t_s"]).to_csv(run / name, index=False)
    with pytest.raises(ReportError, match=r"missing column\(s\) t_s"):
        build_report(run)
