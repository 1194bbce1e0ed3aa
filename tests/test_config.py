"""Scenario loading: schema errors name their dotted key, overrides and --seed apply."""

from __future__ import annotations

import math
import re
from pathlib import Path
from types import UnionType
from typing import Any, get_args, get_origin

import pytest

from nmoe_sim.config import Scenario, ScenarioError, load_scenario
from nmoe_sim.methods import PAPER_METHODS

SMOKE = Path(__file__).resolve().parents[1] / "scenarios" / "smoke.yaml"
BASE = "name: t\nseed: 3\nclients:\n  count: 3\n"


def _write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _error(path: Path, overrides: list[str] | None = None, seed: int | None = None) -> str:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, overrides, seed)
    return " ".join(str(info.value).split())


# --- valid files ------------------------------------------------------------------------------


def test_smoke_scenario_loads_with_its_values() -> None:
    sc = load_scenario(SMOKE)
    assert sc.name == "smoke"
    assert sc.clients.count == 5
    assert sc.dataset.name == "fashion_mnist"
    assert sc.dataset.train_samples == 3000
    assert sc.partition.alpha == 0.5
    assert sc.partition.test_samples_per_client == 200
    assert sc.stages.gate.top_k == 2
    assert sc.stages.extractor.rounds == 2
    assert sc.baselines.centralized.epochs == 2


def test_an_empty_mapping_gives_the_defaults(tmp_path: Path) -> None:
    sc = load_scenario(_write(tmp_path, "{}\n"))
    assert sc == Scenario()
    assert sc.methods == list(PAPER_METHODS)


@pytest.mark.parametrize("text", ["", "# only a comment\n", "\n\n"])
def test_empty_file_is_refused(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path, text)
    assert _error(path).startswith(f"empty scenario: {path}")


# --- schema errors ----------------------------------------------------------------------------


def test_unknown_top_level_key(tmp_path: Path) -> None:
    msg = _error(_write(tmp_path, BASE + "datset:\n  name: mnist\n"))
    assert "datset: unknown key" in msg
    assert "allowed here:" in msg
    for key in ("dataset", "partition", "clients", "methods", "seed"):
        assert key in msg.split("allowed here:")[1]


def test_unknown_nested_key_lists_the_allowed_keys(tmp_path: Path) -> None:
    msg = _error(_write(tmp_path, BASE + "partition:\n  alpah: 0.1\n"))
    assert (
        "partition.alpah: unknown key; allowed here: scheme, alpha, classes_per_client, "
        "min_samples, test_samples_per_client" in msg
    )


def test_unknown_deeply_nested_key(tmp_path: Path) -> None:
    msg = _error(_write(tmp_path, BASE + "stages:\n  gate:\n    optim:\n      lrr: 0.1\n"))
    assert "stages.gate.optim.lrr: unknown key" in msg
    assert "optimizer, lr, momentum, weight_decay, batch_size" in msg


def test_wrong_type(tmp_path: Path) -> None:
    msg = _error(_write(tmp_path, "clients:\n  count: ten\n"))
    assert "clients.count:" in msg
    assert "'ten'" in msg


@pytest.mark.parametrize(
    ("yaml_text", "key", "bad"),
    [
        ("partition:\n  alpha: -1\n", "partition.alpha", "-1"),
        ("partition:\n  alpha: 0\n", "partition.alpha", "0"),
        ("clients:\n  count: 1\n", "clients.count", "1"),
        ("stages:\n  extractor:\n    temperature: 0\n", "stages.extractor.temperature", "0"),
        ("seed: -5\n", "seed", "-5"),
    ],
)
def test_out_of_range(tmp_path: Path, yaml_text: str, key: str, bad: str) -> None:
    msg = _error(_write(tmp_path, yaml_text))
    assert re.search(rf"(^|\s){re.escape(key)}: .*\(got {re.escape(bad)}\)", msg), msg


def test_unknown_method(tmp_path: Path) -> None:
    msg = _error(_write(tmp_path, BASE + "methods: [fedavg, nmoe/fedxx/fedgate]\n"))
    assert "methods: unknown ['nmoe/fedxx/fedgate']" in msg
    assert "allowed:" in msg and "nmoe/fedsc/fedgate" in msg


def test_method_listed_twice(tmp_path: Path) -> None:
    msg = _error(_write(tmp_path, BASE + "methods: [fedavg, fedavg]\n"))
    assert "methods: listed twice" in msg


def test_top_k_larger_than_client_count(tmp_path: Path) -> None:
    msg = _error(_write(tmp_path, BASE + "stages:\n  gate:\n    top_k: 4\n"))
    assert "stages.gate.top_k: 4 exceeds clients.count (3)" in msg


def test_top_k_equal_to_client_count_is_fine(tmp_path: Path) -> None:
    sc = load_scenario(_write(tmp_path, BASE + "stages:\n  gate:\n    top_k: 3\n"))
    assert sc.stages.gate.top_k == 3


def test_top_k_is_not_checked_when_no_method_trains_a_gate(tmp_path: Path) -> None:
    text = BASE + "methods: [fedavg, nmoe/fedsc/uniform]\nstages:\n  gate:\n    top_k: 9\n"
    assert load_scenario(_write(tmp_path, text)).stages.gate.top_k == 9


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    msg = _error(_write(tmp_path, "datset: {}\nclients:\n  count: ten\npartition:\n  alpha: -1\n"))
    assert "datset: unknown key" in msg
    assert "clients.count:" in msg
    assert "partition.alpha:" in msg


# --- --set overrides --------------------------------------------------------------------------


def test_override_sets_a_float(tmp_path: Path) -> None:
    sc = load_scenario(_write(tmp_path, BASE), ["partition.alpha=0.1"])
    assert sc.partition.alpha == 0.1
    assert sc.clients.count == 3, "untouched keys keep the file's value"


def test_override_replaces_file_value_and_last_wins(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE + "partition:\n  alpha: 2.0\n  scheme: iid\n")
    sc = load_scenario(path, ["partition.alpha=0.1", "partition.alpha=0.7"])
    assert sc.partition.alpha == 0.7
    assert sc.partition.scheme == "iid"


def test_override_parses_yaml_values(tmp_path: Path) -> None:
    overrides = ["methods=[fedavg, local]", "clients.count=4", "output.plots=false"]
    sc = load_scenario(_write(tmp_path, BASE), overrides)
    assert sc.methods == ["fedavg", "local"]
    assert sc.clients.count == 4
    assert sc.output.plots is False


def test_override_is_validated_like_the_file(tmp_path: Path) -> None:
    msg = _error(_write(tmp_path, BASE), ["partition.alpah=0.1"])
    assert "partition.alpah: unknown key" in msg


@pytest.mark.parametrize("override", ["seed.x=1", "clients.count.max=4"])
def test_override_through_a_scalar_is_refused(tmp_path: Path, override: str) -> None:
    msg = _error(_write(tmp_path, BASE), [override])
    where = override.split("=")[0].rsplit(".", 1)[0]
    assert f"--set {override.split('=')[0]}: {where} is a value, not a section" in msg


@pytest.mark.parametrize("override", ["partition.alpha", "=0.1", " =3"])
def test_malformed_override_is_refused(tmp_path: Path, override: str) -> None:
    msg = _error(_write(tmp_path, BASE), [override])
    assert "expected KEY=VALUE" in msg


def test_override_with_invalid_yaml_value(tmp_path: Path) -> None:
    msg = _error(_write(tmp_path, BASE), ["name=["])
    assert "--set name: value '[' is not valid YAML" in msg


# --- file problems ----------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    msg = _error(tmp_path / "nope.yaml")
    assert "scenario file not found" in msg and "nope.yaml" in msg


def test_malformed_yaml(tmp_path: Path) -> None:
    msg = _error(_write(tmp_path, "clients: {count: 3\n"))
    assert "not valid YAML" in msg and "s.yaml" in msg


@pytest.mark.parametrize(
    ("text", "kind"), [("- a\n- b\n", "list"), ("just words\n", "str"), ("42\n", "int")]
)
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    msg = _error(_write(tmp_path, text))
    assert f"a scenario is a mapping of keys, got {kind}" in msg


# --- --seed -----------------------------------------------------------------------------------


def test_seed_argument_overrides_file_and_set(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE)
    assert load_scenario(path).seed == 3
    assert load_scenario(path, seed=7).seed == 7
    assert load_scenario(path, ["seed=5"], seed=7).seed == 7


def test_seed_argument_is_validated(tmp_path: Path) -> None:
    msg = _error(_write(tmp_path, BASE), seed=-1)
    assert "seed:" in msg and "(got -1)" in msg


# --- network transport ------------------------------------------------------------------------


def test_tcp_is_the_default_transport_with_linux_settings(tmp_path: Path) -> None:
    sc = load_scenario(_write(tmp_path, BASE))
    assert sc.network.transport == "tcp"
    tcp = sc.network.tcp
    assert (tcp.mtu_bytes, tcp.header_bytes, tcp.initial_window_segments) == (1500, 52, 10)
    assert (tcp.max_window_bytes, tcp.min_rto_ms, tcp.connections) == (6 * 2**20, 200, "persistent")


def test_tcp_headers_must_leave_room_for_payload(tmp_path: Path) -> None:
    msg = _error(
        _write(tmp_path, BASE),
        ["network.tcp.mtu_bytes=100", "network.tcp.header_bytes=100"],
    )
    assert "network.tcp.header_bytes (100) must be below mtu_bytes (100)" in msg


@pytest.mark.parametrize(
    ("topology", "expected"),
    [
        ("ideal", "has no effect on the ideal network (instantaneous transfers)"),
        ("topologies/single_cell.yaml", "its links carry their own numbers"),
    ],
)
def test_network_loss_needs_generated_links(tmp_path: Path, topology: str, expected: str) -> None:
    msg = _error(_write(tmp_path, BASE), [f"network.topology={topology}", "network.loss=0.01"])
    assert "network.loss: " in msg and expected in msg


def test_network_loss_on_a_generated_topology_reaches_client_links(tmp_path: Path) -> None:
    from nmoe_sim.network.build import build_topology

    sc = load_scenario(
        _write(tmp_path, BASE), ["network.topology=mec", "network.loss=0.02", "network.d2d_mbps=50"]
    )
    topo = build_topology(sc.network, sc.clients.count, sc.seed)
    assert topo.link("c0", "bs0")["loss_rate"] == 0.02  # access
    assert topo.link("c0", "c1")["loss_rate"] == 0.02  # device to device
    assert topo.link("bs0", "cloud")["loss_rate"] == 0.0  # the wired backhaul


def test_the_schema_offers_every_registered_transport() -> None:
    from typing import get_args

    from nmoe_sim.config import NetworkConfig
    from nmoe_sim.network.transports import TRANSPORTS

    assert set(get_args(NetworkConfig.model_fields["transport"].annotation)) == set(TRANSPORTS)


# --- bounds -----------------------------------------------------------------------------------

# Units that make a key a rate, an interval or a duration (network.latency_ms, rate_qps, ...).
TIME_AND_RATE_UNITS = ("_s", "_ms", "_qps", "_mbps", "_gflops")
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?")


def _float_keys(model: type = Scenario, prefix: str = "") -> list[tuple[str, Any]]:
    """Every float key of the schema (optional ones too) with its pydantic field, found by
    walking the sections (devices.classes_gflops, a mapping, has its own range check)."""
    from pydantic import BaseModel

    out = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out += _float_keys(annotation, f"{prefix}{name}.")
        elif annotation is float or (
            get_origin(annotation) is UnionType and float in get_args(annotation)
        ):
            out.append((f"{prefix}{name}", field))
    return out


def test_the_schema_walk_finds_the_keys_it_checks() -> None:
    keys = dict(_float_keys())
    assert {"inference.rate_qps", "network.latency_ms", "federation.deadline_s"} <= set(keys)
    assert len(keys) > 40


@pytest.mark.parametrize(
    ("key", "field"), _float_keys(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_float_key_has_an_inclusive_lower_bound(key: str, field: Any) -> None:
    """No `gt=0` alone: 1e-300 would pass it. The smallest value a key takes is a number a real
    scenario never needs to cross (0 where 0 means something, as for a latency)."""
    import annotated_types as at

    lower = [m for m in field.metadata if isinstance(m, at.Ge | at.Gt)]
    assert lower, f"{key}: no lower bound"
    assert all(isinstance(m, at.Ge) for m in lower), f"{key}: use ge=<smallest sensible value>"


@pytest.mark.parametrize(
    ("key", "field"),
    [(k, f) for k, f in _float_keys() if k.endswith(TIME_AND_RATE_UNITS)],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_every_rate_interval_and_duration_states_its_bounds(key: str, field: Any) -> None:
    import annotated_types as at

    stated = [float(n.replace(",", "")) for n in _NUMBER.findall(field.description or "")]
    for m in field.metadata:
        if isinstance(m, at.Ge | at.Le):
            bound = float(m.ge if isinstance(m, at.Ge) else m.le)
            assert any(math.isclose(bound, n) for n in stated), (key, bound, field.description)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("inference.rate_qps", "1.0e-300"),
        ("inference.deadline_ms", "1.0e-300"),
        ("federation.deadline_s", "1.0e-300"),
        ("partition.alpha", "1.0e-300"),
        ("stages.gate.optim.lr", "1.0e-300"),
    ],
)
def test_absurdly_small_numbers_are_refused(tmp_path: Path, key: str, value: str) -> None:
    msg = _error(_write(tmp_path, BASE), [f"{key}={value}"])
    assert f"{key}: Input should be greater than or equal to" in msg
