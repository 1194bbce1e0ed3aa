"""Malformed input is refused before work: exit 2, one message naming the file, key or value.

One example per class of the bad-input battery (issue 10) with its exact message, then a
property test that mutates valid scenarios and topology files.
"""

from __future__ import annotations

import copy
import json
import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from nmoe_sim.cli import app
from nmoe_sim.config import ScenarioError, load_scenario
from nmoe_sim.network.build import build_network
from nmoe_sim.network.topology import TopologyError, load_topology

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "scenarios" / "smoke.yaml"
TOPOLOGIES = sorted((REPO / "topologies").glob("*.yaml"))
BASE = "name: t\nseed: 3\nclients:\n  count: 3\n"


def _write(tmp_path: Path, text: str | bytes, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _error(path: Path, overrides: list[str] | None = None) -> str:
    with pytest.raises(ScenarioError) as info:
        sc = load_scenario(path, overrides)
        build_network(sc.network, sc.clients.count, sc.seed)
    return str(info.value)


def _validate(path: Path, *extra: str) -> Any:
    return CliRunner().invoke(app, ["validate", str(path), *extra])


def _clean_exit(result: Any, codes: tuple[int, ...] = (0, 2)) -> None:
    assert result.exit_code in codes, (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output


# --- files that are not what they claim ----------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00", "not UTF-8 text (it holds NUL bytes: binary data?)"),
        ("name: caf\xe9\n".encode("latin-1"), "not UTF-8 text (byte 0xe9 on line 1)"),
        (
            "name: t\n".encode("utf-16"),
            "not UTF-8 text (it starts with a UTF-16 byte-order mark)",
        ),
    ],
)
def test_files_that_are_not_utf8_text(tmp_path: Path, data: bytes, expected: str) -> None:
    path = _write(tmp_path, data)
    assert _error(path).startswith(f"{path}: {expected}")


def test_comment_only_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "# nothing yet\n")
    assert _error(path) == (
        f"empty scenario: {path} (no keys; write at least `name: ...`, or {{}} for every default)"
    )


def test_duplicate_nested_key_names_the_key_and_both_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE + "network:\n  topology: star\n  latency_ms: 5\n  latency_ms: 9\n")
    assert _error(path) == (
        f"{path}: duplicate key network.latency_ms (lines 7 and 8); a key may appear once in "
        "its section: keep one"
    )


def test_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):  # 10^9 strings once expanded
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    path = _write(tmp_path, "\n".join(lines) + "\n")
    assert "aliases may repeat at most 10,000 nodes in all" in _error(path)


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: " + "[" * 5000 + "]" * 5000 + "\n")
    assert _error(path) == (
        f"{path}: nested deeper than 32 levels (line 1); a scenario or topology needs a few"
    )


def test_integer_of_thousands_of_digits(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE + "partition: {min_samples: " + "7" * 5000 + "}\n")
    assert _error(path) == (
        f"{path}: an integer of 5000 digits (line 5); numbers here have at most 100 digits"
    )


# --- accepted nonsense ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "stages:\n  extractor:\n    rounds: true\n",
            "stages.extractor.rounds: a number is expected here, not true/false (got True)",
        ),
        (
            "stages:\n  gate:\n    rounds: 2.5\n",
            "stages.gate.rounds: Input should be a valid integer, got a number with a "
            "fractional part (got 2.5)",
        ),
        (
            "stages:\n  extractor:\n    optim: {weight_decay: .inf}\n",
            "stages.extractor.optim.weight_decay: must be a finite number, not NaN or infinity "
            "(got inf)",
        ),
        (
            "stages:\n  gate:\n    routing_noise: .nan\n",
            "stages.gate.routing_noise: must be a finite number, not NaN or infinity (got nan)",
        ),
        (
            "network: {topology: star, latency_ms: 1e300}\n",
            "network.latency_ms: Input should be less than or equal to 60000 (got '1e300')",
        ),
        (
            "stages:\n  extractor:\n    temperature: 1.0e-9\n",
            "stages.extractor.temperature: Input should be greater than or equal to 0.01 "
            "(got 1e-09)",
        ),
        ("dataset: {root: ''}\n", "dataset.root: an empty path;"),
        (
            "output: {plots: 1}\n",
            "output.plots: true or false is expected here (got 1)",
        ),
    ],
)
def test_nonsense_values(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in _error(_write(tmp_path, BASE + text))


# --- valid for validate, then a failure in run: now refused by validate ---------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "federation: {clients_per_round: 5}\n",
            "federation.clients_per_round: 5 exceeds clients.count (3); choose 1..3 (or leave "
            "it out: every client)",
        ),
        (
            "federation: {mode: fedbuff, concurrency: 4}\n",
            "federation.concurrency: 4 exceeds clients.count (3)",
        ),
        (
            "network: {topology: mec, cells: 5}\n",
            "network.cells: 5 cells for clients.count=3 leaves cells without clients; choose 1..3",
        ),
        ("stragglers: {lognormal_sigma: 50}\n", "stragglers.lognormal_sigma: Input should be"),
        ("stragglers: {slowdown: .inf}\n", "stragglers.slowdown: must be a finite number"),
        ("runtime: {torch_threads: 100000}\n", "runtime.torch_threads: Input should be"),
        (
            "runtime: {backend: ray, cpus_per_client: 0.0001}\n",
            "runtime.cpus_per_client: Input should be greater than or equal to 0.01",
        ),
        ("name: " + "x" * 300 + "\n", "name: String should have at most 100 characters"),
    ],
)
def test_run_time_failures_are_caught_by_validate(tmp_path: Path, text: str, expected: str) -> None:
    base = BASE.replace("name: t\n", "") if text.startswith("name:") else BASE
    assert expected in _error(_write(tmp_path, base + text))


def test_starving_partition_is_refused_with_the_numbers(tmp_path: Path) -> None:
    text = (
        "clients: {count: 100}\n"
        "dataset: {name: synthetic, train_samples: 200}\n"
        "partition: {scheme: iid}\n"
    )
    assert _error(_write(tmp_path, text)) == (
        "invalid scenario:\n  partition.min_samples: 200 train samples over clients.count=100 "
        "give a client 2 (scheme iid), fewer than min_samples=10; raise "
        "dataset.train_samples to at least 1,000, lower clients.count to 20 or lower "
        "partition.min_samples"
    )


def test_unconnectable_random_geometric_radius_names_the_radius_that_works(
    tmp_path: Path,
) -> None:
    text = "clients: {count: 30}\nnetwork: {topology: random_geometric, radius: 0.05}\n"
    message = _error(_write(tmp_path, text))
    assert message.startswith("network.radius: 0.05 leaves some of the 30 clients unconnected")
    assert "the smallest radius that connects them is 0.3059: set network.radius=0.306" in message
    ok = _write(tmp_path, text.replace("0.05", "0.306"), "ok.yaml")
    sc = load_scenario(ok)
    build_network(sc.network, sc.clients.count, sc.seed)


# --- keys that do nothing in the chosen mode -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "overrides", "expected"),
    [
        (
            BASE,
            ["network.bandwidth_mbps=1"],
            "network.bandwidth_mbps: has no effect on the ideal network (instantaneous "
            "transfers); choose a topology (star, mec, random_geometric or a topology file) or "
            "drop the key",
        ),
        (
            BASE + "federation: {buffer_size: 3}\n",
            [],
            "federation.buffer_size: has no effect in mode 'sync' (used by fedbuff); set "
            "federation.mode or drop the key",
        ),
        (
            BASE + "network: {topology: star, cells: 3}\n",
            [],
            "network.cells: has no effect on the star topology (used by mec); drop the key or "
            "choose that topology",
        ),
        (
            BASE + "network: {topology: mec, radius: 0.5}\n",
            [],
            "network.radius: has no effect on the mec topology (used by random_geometric)",
        ),
        (
            BASE + "network: {topology: star, transport: fluid, tcp: {mtu_bytes: 9000}}\n",
            [],
            "network.tcp: has no effect with transport 'fluid'",
        ),
        (
            BASE + "federation: {mode: fedasync, deadline_s: 3}\n",
            [],
            "federation.deadline_s: has no effect in mode 'fedasync' (used by sync)",
        ),
    ],
)
def test_dead_keys_are_refused(
    tmp_path: Path, text: str, overrides: list[str], expected: str
) -> None:
    assert expected in _error(_write(tmp_path, text), overrides)


def test_a_default_written_out_is_not_a_dead_key(tmp_path: Path) -> None:
    # A resolved config.yaml writes every default: it must load again.
    path = _write(tmp_path, BASE + "network: {bandwidth_mbps: 20.0, radius: 0.35}\n")
    assert load_scenario(path).network.topology == "ideal"


def test_the_resolved_config_of_every_shipped_scenario_loads_again(tmp_path: Path) -> None:
    shipped = [
        *(REPO / "scenarios").glob("*.yaml"),
        *(REPO / "benchmarks" / "vs_flower").glob("*.yaml"),
    ]
    assert len(shipped) >= 7  # the scenarios and the benchmark workloads
    for source in shipped:
        sc = load_scenario(source)
        dumped = _write(tmp_path, yaml.safe_dump(sc.model_dump(mode="json")), source.name)
        assert load_scenario(dumped) == sc, source


# --- --set, grids, topology files ---------------------------------------------------------------


def test_set_value_goes_through_the_bounded_loader(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE)
    assert _error(path, ["seed=" + "9" * 500]) == (
        "--set seed: value '99999999999999999999999999999999999999999999999999999999999... "
        "(502 characters): an integer of 500 digits (line 1); numbers here have at most 100 "
        "digits"
    )
    assert "a number is expected here, not true/false" in _error(path, ["stages.gate.rounds=yes"])


def test_topology_file_rules(tmp_path: Path) -> None:
    good = (REPO / "topologies" / "single_cell.yaml").read_text()
    dup = _write(tmp_path, good + "description: again\n", "dup.yaml")
    with pytest.raises(TopologyError, match=r"duplicate key description \(lines \d+ and \d+\)"):
        load_topology(dup)
    latin = _write(tmp_path, good.replace("phones", "t\xe9l\xe9phones").encode("latin-1"), "l.yaml")
    with pytest.raises(TopologyError, match="not UTF-8 text"):
        load_topology(latin)
    far = _write(tmp_path, good.replace("latency_ms: 10}", "latency_ms: 1.0e+300}"), "far.yaml")
    with pytest.raises(TopologyError, match=r"latency_ms 1e\+300 is above 60000 ms"):
        load_topology(far)
    nan = _write(tmp_path, good.replace("bandwidth_mbps: 1000", "bandwidth_mbps: .nan"), "n.yaml")
    with pytest.raises(TopologyError, match="bandwidth_mbps must be a positive number"):
        load_topology(nan)
    empty = _write(tmp_path, "# later\n", "empty.yaml")
    with pytest.raises(TopologyError, match="empty topology"):
        load_topology(empty)


# --- report inputs -----------------------------------------------------------------------------


def test_report_inputs_are_refused_naming_the_file(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    summary = run / "summary.json"
    summary.write_text("{not json")
    result = CliRunner().invoke(app, ["report", str(run)])
    _clean_exit(result, (2,))
    assert f"{summary}: not valid JSON" in " ".join(result.stderr.split())
    summary.write_text(json.dumps({"methods": {"fedavg": 3}}))
    result = CliRunner().invoke(app, ["report", str(run)])
    _clean_exit(result, (2,))
    assert "methods.fedavg must be an object of the method's figures, got 3" in " ".join(
        result.stderr.split()
    )


# --- the property test -------------------------------------------------------------------------

_WEIRD = [
    True,
    False,
    None,
    "",
    "nan",
    ".inf",
    "-inf",
    "1e999",
    float("nan"),
    float("inf"),
    -1,
    0,
    2.5,
    1e300,
    -1e300,
    1e-300,
    10**40,
    "x" * 300,
    [],
    {},
    [1, [2, [3]]],
    {"a": {"b": {"c": {}}}},
]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _set(node: Any, path: tuple[Any, ...], value: Any) -> None:
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def _drop(node: Any, path: tuple[Any, ...]) -> None:
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]


@st.composite
def _mutated_text(draw: st.DrawFn, source: str) -> str | bytes:
    """A valid file's text with one mutation: drop / retype / duplicate a key, extreme or
    random values, random bytes, deep nesting, aliases, truncation."""
    data = yaml.safe_load(source)
    kind = draw(
        st.sampled_from(["retype", "drop", "duplicate", "bytes", "truncate", "nest", "alias"])
    )
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "truncate":
        return source[: draw(st.integers(0, len(source)))]
    if kind == "nest":
        depth = draw(st.integers(1, 200))
        return "name: " + "[" * depth + "1" + "]" * depth + "\n"
    if kind == "alias":
        width = draw(st.integers(1, 30))
        levels = draw(st.integers(1, 6))
        lines = ["a0: &a0 [x]"]
        for i in range(1, levels + 1):
            lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
        return "\n".join(lines) + "\n"
    paths = _paths(data)
    path = draw(st.sampled_from(paths))
    if kind == "drop":
        _drop(data, path)
        return yaml.safe_dump(data)
    if kind == "duplicate":
        text = yaml.safe_dump(data, default_flow_style=False)
        lines = text.splitlines()
        at = draw(st.integers(0, len(lines) - 1))
        return "\n".join([*lines[: at + 1], lines[at], *lines[at + 1 :]]) + "\n"
    value = draw(
        st.one_of(
            st.sampled_from(_WEIRD),
            st.integers(-(10**6), 10**6),
            st.floats(allow_nan=True, allow_infinity=True),
            st.text(max_size=20),
        )
    )
    data = copy.deepcopy(data)
    _set(data, path, value)
    text = yaml.safe_dump(data, allow_unicode=True)
    if isinstance(value, float) and not math.isfinite(value):
        assert ".nan" in text or ".inf" in text
    return text


_SCENARIOS = [SMOKE.read_text(), (REPO / "scenarios" / "mec.yaml").read_text()]
_FUZZ = settings(
    max_examples=100,
    deadline=timedelta(seconds=5),
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@_FUZZ
@given(text=st.sampled_from(_SCENARIOS).flatmap(_mutated_text))
def test_fuzz_scenarios_load_or_refuse_cleanly(tmp_path: Path, text: str | bytes) -> None:
    """Input classes: keys dropped, duplicated or retyped (bools, None, empty and long strings,
    "nan"/".inf" strings, NaN/inf floats, huge, tiny and negative numbers, lists and nested
    mappings where scalars belong), random bytes, truncated files, deep nesting, alias chains.
    Loading, validating and building the network either succeeds or raises ScenarioError, and
    `nmoe-sim validate` exits 0 or 2 without a traceback."""
    path = _write(tmp_path, text)
    try:
        sc = load_scenario(path)
        build_network(sc.network, sc.clients.count, sc.seed)
    except ScenarioError as exc:
        assert str(exc)
        assert len(str(exc)) < 5000
    _clean_exit(_validate(path))


@_FUZZ
@given(
    text=st.sampled_from([p.read_text() for p in TOPOLOGIES]).flatmap(_mutated_text),
    clients=st.integers(2, 6),
)
def test_fuzz_topology_files_load_or_refuse_cleanly(
    tmp_path: Path, text: str | bytes, clients: int
) -> None:
    """The same mutations on the shipped topology files: load_topology succeeds or raises
    TopologyError; a scenario naming the file validates or exits 2."""
    path = _write(tmp_path, text, "topo.yaml")
    try:
        load_topology(path)
    except TopologyError as exc:
        assert str(exc)
    scenario = _write(tmp_path, f"clients: {{count: {clients}}}\nnetwork: {{topology: {path}}}\n")
    _clean_exit(_validate(scenario))


def test_a_d2d_mesh_too_large_names_the_cells_that_fit(tmp_path: Path) -> None:
    # 3,000 clients in one cell: 3000 * 2999 directed d2d links. Ten cells of 300 are
    # 10 * 300 * 299 = 897,000 <= 1,000,000; nine of 334 are 1,000,998 > 1,000,000.
    text = "name: t\nclients: {count: 3000}\nnetwork: {topology: mec, cells: 1, d2d_mbps: 50}\n"
    assert _error(_write(tmp_path, text)).endswith(
        "network.d2d_mbps: a device-to-device link between every pair of clients in each of 1 "
        "cells of 3000 is 8,997,000 directed links (at most 1,000,000); use at least 10 cells "
        "(network.cells), or drop d2d_mbps"
    )
