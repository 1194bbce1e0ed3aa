"""Scenario problems: every one reported, the most fundamental first; a key the file sets that a
command-line override makes inert is ignored with a note, while one the user chose where it does
nothing is refused. The cases come from the schema's own tables of mode-dependent keys, so a key
added to a table is covered here."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types as at
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from typer.testing import CliRunner

from nmoe_sim.cli import app
from nmoe_sim.config import (
    FederationConfig,
    NetworkConfig,
    RuntimeConfig,
    ScenarioError,
    load_scenario,
)
from nmoe_sim.preflight import check_scenario
from nmoe_sim.problems import within

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "scenarios" / "smoke.yaml"
TOPOLOGY = REPO / "topologies" / "two_cells_d2d.yaml"  # 6 clients: fits smoke's 5
BASE = "name: t\nseed: 3\nclients: {count: 6}\n"


def _write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _lines(exc: pytest.ExceptionInfo[ScenarioError]) -> list[str]:
    """The problems of a refusal, one per line, after its `invalid scenario:` heading."""
    head, *lines = str(exc.value).splitlines()
    assert head == "invalid scenario:"
    return [line.strip() for line in lines]


def _refused(path: Path, overrides: list[str] | None = None) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        check_scenario(path, overrides)
    return _lines(info)


# --- the tables of keys each mode reads -------------------------------------------------------

TABLES: list[tuple[str, str, dict[str, tuple[str, ...]]]] = [
    (
        "network",
        "topology",
        {
            (str(TOPOLOGY) if kind == "file" else kind): uses
            for kind, uses in NetworkConfig._USES.items()
        },
    ),
    (
        "federation",
        "mode",
        {
            mode: tuple(k for k, modes in FederationConfig._MODE_KEYS.items() if mode in modes)
            for mode in get_args(FederationConfig.model_fields["mode"].annotation)
        },
    ),
    (
        "runtime",
        "backend",
        {
            backend: RuntimeConfig._RAY_ONLY if backend == "ray" else ()
            for backend in get_args(RuntimeConfig.model_fields["backend"].annotation)
        },
    ),
]
SECTIONS = {"network": NetworkConfig, "federation": FederationConfig, "runtime": RuntimeConfig}


def _bounds(metadata: list[Any]) -> tuple[float, float]:
    lo, hi = -math.inf, math.inf
    for m in metadata:
        if isinstance(m, at.Ge | at.Gt):
            lo = float(m.ge if isinstance(m, at.Ge) else m.gt)
        if isinstance(m, at.Le | at.Lt):
            hi = float(m.le if isinstance(m, at.Le) else m.lt)
    return lo, hi


def _other_value(model: type[BaseModel], key: str) -> Any:
    """A valid value of `model.key` other than its default, found from the schema."""
    field = model.model_fields[key]
    default = field.get_default(call_default_factory=True)
    kind = field.annotation
    if get_origin(kind) in (Union, UnionType):  # X | None
        kind = next(a for a in get_args(kind) if a is not type(None))
    if isinstance(kind, type) and issubclass(kind, BaseModel):  # a section: change one key
        inner = next(iter(kind.model_fields))
        return {inner: _other_value(kind, inner)}
    if get_origin(kind) is Literal:
        return next(v for v in get_args(kind) if v != default)
    if kind is bool:
        return not default
    if kind is str:
        return "auto"
    lo, hi = _bounds(field.metadata)
    start = default if default is not None else max(lo, 0.0)
    for candidate in (start * 2, start + 1, lo, (lo + hi) / 2):
        if candidate != default and lo <= candidate <= hi and math.isfinite(candidate):
            return int(candidate) if kind is int else float(candidate)
    raise AssertionError(f"no other value for {model.__name__}.{key}")


def _loads(tmp_path: Path, section: str, values: dict[str, Any]) -> bool:
    try:
        load_scenario(_write(tmp_path, BASE + yaml.safe_dump({section: values}), "try.yaml"))
    except ScenarioError:
        return False
    return True


def _home(tmp_path: Path, section: str, mode_key: str, mode: str, keys: tuple[str, ...]) -> dict:
    """`section` in `mode` with every key the mode reads set off its default, where the others
    so set allow it (tcp is dead once transport is fluid: one of the two is left out)."""
    values: dict[str, Any] = {mode_key: mode}
    for key in keys:
        candidate = {**values, key: _other_value(SECTIONS[section], key)}
        if _loads(tmp_path, section, candidate):
            values = candidate
    return values


CASES = [
    pytest.param(section, mode_key, table, home, other, id=f"{section}-{Path(home).name}-{other}")
    for section, mode_key, table in TABLES
    for home in table
    for other in table
    if other != home and set(table[home]) - set(table[other])
]


@pytest.mark.parametrize(("section", "mode_key", "table", "home", "other"), CASES)
def test_file_keys_an_override_makes_inert_are_ignored_and_chosen_ones_refused(
    tmp_path: Path, section: str, mode_key: str, table: dict, home: str, other: str
) -> None:
    values = _home(tmp_path, section, mode_key, home, table[home])
    inert = [k for k in values if k != mode_key and k not in table[other]]
    assert inert, values
    path = _write(tmp_path, BASE + yaml.safe_dump({section: values}))
    switch = f"{section}.{mode_key}={other}"

    # The file's keys for the other mode: ignored, with a note naming each and the file.
    notes: list[str] = []
    loaded = getattr(load_scenario(path, [switch], notes=notes), section)
    model = SECTIONS[section]
    for key in inert:
        assert getattr(loaded, key) == model.model_fields[key].get_default(
            call_default_factory=True
        )
    assert all("(set in s.yaml)" in n for n in notes), notes
    named = {k for n in notes for k in n.split(" (set in")[0].split(", ")}
    assert named == {f"{section}.{k}" for k in inert}

    # The same key chosen on the command line does nothing there: refused, naming it.
    key = inert[0]
    rest = {k: v for k, v in values.items() if k != key}
    without = _write(tmp_path, BASE + yaml.safe_dump({section: rest}), "w.yaml")
    chosen = f"{section}.{key}={json.dumps(values[key])}"
    with pytest.raises(ScenarioError, match=rf"{section}\.{key}: has no effect"):
        load_scenario(without, [switch, chosen])

    # And so is the file setting it together with the mode that ignores it.
    both = _write(tmp_path, BASE + yaml.safe_dump({section: {**values, mode_key: other}}), "b.yaml")
    with pytest.raises(ScenarioError, match=rf"{section}\.{key}: has no effect"):
        load_scenario(both)


def test_cli_notes_the_ignored_key_on_one_stderr_line() -> None:
    result = CliRunner().invoke(app, ["validate", str(SMOKE), "--set", "network.topology=star"])
    assert result.exit_code == 0, result.stderr
    assert "star network" in result.stdout
    (line,) = result.stderr.splitlines()
    assert line.startswith("note: network.d2d_mbps (set in smoke.yaml) is ignored: no effect on")


def test_a_grid_over_the_topology_ignores_the_files_keys_where_they_do_nothing() -> None:
    from nmoe_sim.sweep import parse_grid, plan_sweep

    notes: list[str] = []
    points = plan_sweep(SMOKE, [parse_grid("network.topology=star,mec")], [], None, notes)
    star, mec = (p.scenario.network for p in points)
    assert (star.topology, star.d2d_mbps, mec.topology, mec.d2d_mbps) == ("star", None, "mec", 50)
    assert len(notes) == 1 and notes[0].startswith("network.d2d_mbps (set in smoke.yaml) is ")


def test_an_unset_d2d_link_makes_its_latency_inert(tmp_path: Path) -> None:
    """`--set network.d2d_mbps=null` is how a file's d2d links are dropped: their latency goes
    with them."""
    notes: list[str] = []
    sc = load_scenario(SMOKE, ["network.d2d_mbps=null"], notes=notes)
    assert sc.network.d2d_mbps is None
    assert notes == [] or all("d2d_latency_ms" in n for n in notes)
    path = _write(tmp_path, BASE + "network: {topology: mec, d2d_mbps: 50, d2d_latency_ms: 7}\n")
    notes = []
    assert load_scenario(path, ["network.d2d_mbps=null"], notes=notes).network.d2d_latency_ms == 2
    assert len(notes) == 1 and "network.d2d_latency_ms (set in s.yaml) is ignored" in notes[0]


# --- order: what a user must fix first comes first --------------------------------------------


def test_every_class_of_problem_is_reported_most_fundamental_first(tmp_path: Path) -> None:
    # Written in the reverse order of what must be fixed first.
    text = (
        "federation: {buffer_size: 3}\n"  # no effect in sync
        "clients: {count: ten}\n"  # a value of the wrong type
        "partition: {alpah: 0.1}\n"  # an unknown key
        "network: {topology: nowhere/net.yaml}\n"  # a file that does not exist
    )
    lines = _refused(_write(tmp_path, text))
    assert [line.split(":")[0] for line in lines] == [
        "network.topology",
        "partition.alpah",
        "clients.count",
        "federation.buffer_size",
    ]


def test_every_conflict_is_reported_before_keys_that_do_nothing(tmp_path: Path) -> None:
    text = (
        "federation: {buffer_size: 3, clients_per_round: 5}\n"
        "stages: {gate: {top_k: 9}}\n"
        "clients: {count: 3}\n"
    )
    keys = [line.split(":")[0] for line in _refused(_write(tmp_path, text))]
    assert keys == ["stages.gate.top_k", "federation.clients_per_round", "federation.buffer_size"]


def test_checks_that_read_a_wrong_key_say_nothing(tmp_path: Path) -> None:
    # bandwidth_mbps "does nothing with a topology file": moot while the topology is no file.
    path = _write(tmp_path, BASE + "network: {topology: hexagon, bandwidth_mbps: 5}\n")
    assert _refused(path) == [
        "network.topology: unknown 'hexagon'; choose ideal, star, mec, random_geometric or the "
        "path of a topology YAML file"
    ]
    result = CliRunner().invoke(app, ["validate", str(SMOKE), "--set", "network.topology=hexagon"])
    assert result.exit_code == 2
    assert "note:" not in result.stderr  # no "ignored: no effect with a topology file (hexagon)"


# --- a mode override together with another mistake: the mistake comes first --------------------

_TOPOLOGY_TEXT = TOPOLOGY.read_text()
_TOPOLOGY_DEFECTS = {
    "isolated-node": _TOPOLOGY_TEXT.replace(
        "links:", "  - {name: lone, role: client, device_class: phone}\nlinks:"
    ),
    "duplicate-link": _TOPOLOGY_TEXT + "  - {a: bs0, b: c0, bandwidth_mbps: 20, latency_ms: 5}\n",
    "negative-bandwidth": _TOPOLOGY_TEXT.replace("bandwidth_mbps: 500", "bandwidth_mbps: -5", 1),
    "nan-bandwidth": _TOPOLOGY_TEXT.replace("bandwidth_mbps: 500", "bandwidth_mbps: .nan", 1),
    "typo-key": _TOPOLOGY_TEXT.replace("bandwidth_mbps: 500", "bandwith_mbps: 500", 1),
    "unknown-role": _TOPOLOGY_TEXT.replace("role: edge", "role: tower", 1),
}


@pytest.mark.parametrize("defect", sorted(_TOPOLOGY_DEFECTS))
def test_a_broken_topology_file_comes_before_the_files_mec_keys(
    tmp_path: Path, defect: str
) -> None:
    broken = _write(tmp_path, _TOPOLOGY_DEFECTS[defect], "net.yaml")
    assert "bandwidth_mbps: 500" in _TOPOLOGY_TEXT and "role: edge" in _TOPOLOGY_TEXT
    # Its only problem: smoke.yaml's d2d_mbps is ignored, not refused, on a topology file.
    (line,) = _refused(SMOKE, [f"network.topology={broken}"])
    assert line.startswith("network.topology: ") and "has no effect" not in line, line


@pytest.mark.parametrize(
    ("overrides", "first"),
    [
        (["network.topology=nowhere/net.yaml"], "network.topology: topology file"),
        (["network.topology=hexagon"], "network.topology: unknown 'hexagon'"),
        ([f"network.topology={REPO / 'topologies'}"], "network.topology: '"),
        (["network.topology=random_geometric", "network.radius=0.01"], "network.radius: 0.01"),
        (["clients.count=100000", "network.cells=1"], "network.d2d_mbps: a device-to-device"),
        (["network.topology=star", "network.cells=3"], "network.cells: has no effect"),
    ],
)
def test_a_mode_override_with_one_more_mistake(overrides: list[str], first: str) -> None:
    lines = _refused(SMOKE, overrides)
    assert lines[0].startswith(first), lines


_MODE_OVERRIDES = [
    "network.topology=star",
    "network.topology=ideal",
    "network.topology=random_geometric",
    f"network.topology={TOPOLOGY}",
    "network.transport=fluid",
    "federation.mode=fedasync",
    "federation.mode=fedbuff",
    "runtime.backend=ray",
]


@pytest.mark.parametrize("override", _MODE_OVERRIDES)
def test_each_mode_override_alone_runs_the_smoke_scenario(override: str) -> None:
    check_scenario(SMOKE, [override])


def _leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, dict):
            out.update(_leaves(value, f"{prefix}{key}."))
        elif not isinstance(value, list):
            out[f"{prefix}{key}"] = value
    return out


_SMOKE = yaml.safe_load(SMOKE.read_text())


@st.composite
def _mistake(draw: st.DrawFn) -> tuple[str, str, Any, bool]:
    """A mode override, and one key of smoke.yaml made wrong: a typo'd key, a value of the wrong
    type, or a number far out of range; written in the file or given as a --set."""
    override = draw(st.sampled_from(_MODE_OVERRIDES))
    switched = override.split("=")[0]
    leaves = {k: v for k, v in _leaves(_SMOKE).items() if not within(k, [switched])}
    key = draw(st.sampled_from(sorted(leaves)))
    value = leaves[key]
    kind = draw(st.sampled_from(["typo", "type", "range"]))
    if kind == "typo":
        key, wrong = f"{key}_x", 1
    elif kind == "range" and isinstance(value, int | float) and not isinstance(value, bool):
        wrong = -(10**9)
    else:
        wrong = "ten" if isinstance(value, int | float) else 12345
    return override, key, wrong, draw(st.booleans())


def _set_in(data: dict, key: str, value: Any) -> None:
    *parents, last = key.split(".")
    for part in parents:
        data = data[part]
    data[last] = value


@settings(
    max_examples=60,
    deadline=timedelta(seconds=10),
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=_mistake())
def test_the_first_problem_names_the_mistake_made_with_a_mode_override(
    tmp_path: Path, case: tuple[str, str, Any, bool]
) -> None:
    override, key, wrong, in_file = case
    data = yaml.safe_load(SMOKE.read_text())
    overrides = [override]
    if in_file:
        _set_in(data, key, wrong)
    else:
        overrides.append(f"{key}={json.dumps(wrong)}")
    path = _write(tmp_path, yaml.safe_dump(data), "smoke.yaml")
    lines = _refused(path, overrides)
    assert lines[0].startswith(f"{key}:"), (case, lines)
