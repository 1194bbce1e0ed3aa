"""`nmoe-sim validate`: bad input exits 2 with the key path on stderr and never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nmoe_sim.cli import EXIT_BAD_INPUT, app
from nmoe_sim.config import load_scenario

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "scenarios" / "smoke.yaml"
BASE = "name: t\nseed: 3\nclients:\n  count: 3\n"


def _invoke(args: list[str]):
    return CliRunner().invoke(app, args)


def _flat(text: str) -> str:
    """Rich wraps long error lines; compare with whitespace collapsed."""
    return " ".join(text.split())


def _assert_bad_input(result, *needles: str) -> None:
    assert result.exit_code == EXIT_BAD_INPUT == 2, (result.exit_code, result.exception)
    # Typer's runner turns a clean exit into SystemExit; anything else escaped the CLI.
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    stderr = _flat(result.stderr)
    assert stderr.startswith("error:")
    for needle in needles:
        assert needle in stderr, (needle, stderr)


def _scenario(tmp_path: Path, text: str, name: str = "s.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("text", "extra", "needles"),
    [
        pytest.param(
            BASE + "datset:\n  name: mnist\n",
            [],
            ["datset: unknown key", "allowed here:", "dataset"],
            id="unknown-top-level-key",
        ),
        pytest.param(
            BASE + "partition:\n  alpah: 0.1\n",
            [],
            [
                "partition.alpah: unknown key; allowed here: scheme, alpha, "
                "classes_per_client, min_samples, test_samples_per_client"
            ],
            id="unknown-nested-key",
        ),
        pytest.param(
            "clients:\n  count: ten\n", [], ["clients.count:", "(got 'ten')"], id="wrong-type"
        ),
        pytest.param(
            BASE + "partition:\n  alpha: -1\n",
            [],
            ["partition.alpha:", "greater than or equal to 0.001", "(got -1)"],
            id="alpha-negative",
        ),
        pytest.param(
            "clients:\n  count: 1\n",
            [],
            ["clients.count:", "greater than or equal to 2", "(got 1)"],
            id="one-client",
        ),
        pytest.param(
            BASE + "methods: [fedavg, nmoe/fedsc/bestgate]\n",
            [],
            ["methods: unknown ['nmoe/fedsc/bestgate']", "allowed:"],
            id="unknown-method",
        ),
        pytest.param(
            BASE + "stages:\n  gate:\n    top_k: 4\n",
            [],
            ["stages.gate.top_k: 4 exceeds clients.count (3)"],
            id="top-k-over-clients",
        ),
        pytest.param(
            BASE,
            ["--set", "seed.x=1"],
            ["--set seed.x: seed is a value, not a section"],
            id="set-through-scalar",
        ),
        pytest.param(
            BASE,
            ["--set", "partition.alpha"],
            ["--set 'partition.alpha': expected KEY=VALUE"],
            id="set-without-equals",
        ),
        pytest.param(
            BASE,
            ["--set", "partition.alpah=0.1"],
            ["partition.alpah: unknown key"],
            id="set-unknown-key",
        ),
        pytest.param(BASE, ["--seed", "-1"], ["seed:", "(got -1)"], id="seed-negative"),
        pytest.param(
            BASE + "runtime: {max_actors: 4}\n",
            [],
            ["runtime.max_actors: has no effect without runtime.backend: ray"],
            id="ray-key-without-ray",
        ),
        pytest.param(
            BASE + "runtime: {backend: ray, device: cuda}\n",
            [],
            ["runtime.device: cuda with the ray backend needs runtime.gpus_per_client > 0"],
            id="ray-cuda-without-gpu-share",
        ),
        pytest.param(
            BASE + "runtime: {backend: ray, gpus_per_client: 1.5}\n",
            [],
            ["runtime.gpus_per_client: 1.5 is neither a fraction of one GPU nor a whole number"],
            id="gpu-share-above-one",
        ),
        pytest.param(
            BASE + "runtime: {backend: ray, cpus_per_client: 0}\n",
            [],
            ["runtime.cpus_per_client:", "(got 0)"],
            id="zero-cpus-per-client",
        ),
        pytest.param(
            BASE + "runtime: {backend: dask}\n",
            [],
            ["runtime.backend:", "'inprocess' or 'ray'"],
            id="unknown-backend",
        ),
        pytest.param("clients: {count: 3\n", [], ["s.yaml: not valid YAML"], id="bad-yaml"),
        pytest.param(
            "- a\n- b\n", [], ["s.yaml: a scenario is a mapping of keys, got list"], id="yaml-list"
        ),
    ],
)
def test_validate_rejects_bad_input(
    tmp_path: Path, text: str, extra: list[str], needles: list[str]
) -> None:
    result = _invoke(["validate", _scenario(tmp_path, text), *extra])
    _assert_bad_input(result, *needles)


def test_validate_missing_file(tmp_path: Path) -> None:
    result = _invoke(["validate", str(tmp_path / "nope.yaml")])
    _assert_bad_input(result, "scenario file not found", "nope.yaml")


def test_validate_smoke_scenario() -> None:
    result = _invoke(["validate", str(SMOKE)])
    assert result.exit_code == 0, result.stderr
    # smoke.yaml leaves `methods` at its default (all 13), sets 5 clients and the mec network.
    assert "valid (13 methods, 5 clients, mec network over tcp)" in _flat(result.stdout)
    assert result.stderr == ""


def test_set_override_is_applied(tmp_path: Path) -> None:
    path = _scenario(tmp_path, BASE)
    result = _invoke(["validate", path, "--set", "partition.alpha=0.1"])
    assert result.exit_code == 0, result.stderr
    assert "valid" in result.stdout
    # The value that validated is really 0.1 (checked through the same loader the CLI uses).
    assert load_scenario(Path(path), ["partition.alpha=0.1"]).partition.alpha == 0.1


def test_set_override_changes_what_validate_reports(tmp_path: Path) -> None:
    path = _scenario(tmp_path, BASE)
    result = _invoke(
        ["validate", path, "--set", "methods=[fedavg, local]", "--set", "clients.count=4"]
    )
    assert result.exit_code == 0, result.stderr
    assert "valid (2 methods, 4 clients, ideal network)" in _flat(result.stdout)


def test_seed_option_overrides_file(tmp_path: Path) -> None:
    path = _scenario(tmp_path, BASE)
    result = _invoke(["validate", path, "--seed", "7"])
    assert result.exit_code == 0, result.stderr
    assert load_scenario(Path(path), [], 7).seed == 7


# --- user text inside error messages is printed verbatim ---------------------------------------
# Brackets from the user's file, path or values must not be read as rich markup: `[b]` would
# vanish from the message and an unmatched `[/x]` would raise MarkupError with a traceback.


def test_malformed_yaml_line_is_shown_verbatim(tmp_path: Path) -> None:
    # PyYAML quotes the offending line; rich eats "[fedavg]" and shows "methods: ]".
    result = _invoke(["validate", _scenario(tmp_path, "methods: [fedavg]]\n")])
    _assert_bad_input(result, "not valid YAML", "methods: [fedavg]]")


def test_unknown_method_name_with_brackets_is_shown_verbatim(tmp_path: Path) -> None:
    result = _invoke(["validate", _scenario(tmp_path, BASE + "methods: ['[b]x']\n")])
    _assert_bad_input(result, "methods: unknown ['[b]x']")


def test_missing_file_with_bracket_in_name_exits_2(tmp_path: Path) -> None:
    result = _invoke(["validate", str(tmp_path / "run[/x].yaml")])
    _assert_bad_input(result, "scenario file not found", "run[/x].yaml")


# --- the real entry point ---------------------------------------------------------------------


def test_installed_command_exits_2_without_traceback(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "nmoe-sim"
    if not exe.exists():
        exe = REPO / ".venv" / "bin" / "nmoe-sim"
    path = _scenario(tmp_path, BASE + "partition:\n  alpah: 0.1\n")
    proc = subprocess.run(
        [str(exe), "validate", path, "--set", "clients.count=ten"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    stderr = _flat(proc.stderr)
    assert "partition.alpah: unknown key" in stderr
    assert "clients.count:" in stderr


# --- failures found once the run starts: still one clear message, no traceback, nothing written ---


def test_missing_dataset_exits_3_and_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torchvision import datasets

    def no_network(self: object) -> None:
        raise OSError("network is unreachable (mocked)")

    monkeypatch.setattr(datasets.CIFAR10, "download", no_network)
    path = _scenario(tmp_path, f"dataset: {{name: cifar10, root: {tmp_path / 'data'}}}\n")
    out = tmp_path / "run"
    result = _invoke(["run", path, "--out", str(out)])
    assert result.exit_code == 3
    assert "Traceback" not in result.output
    message = _flat(result.stderr)
    assert "cifar10" in message.lower() or "CIFAR-10" in message
    assert "NMOE_SIM_DATA" in message or "dataset.root" in message
    assert not out.exists()


def test_cuda_without_a_gpu_is_refused_before_work(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = tmp_path / "run"
    result = _invoke(["run", _scenario(tmp_path, "runtime: {device: cuda}\n"), "--out", str(out)])
    assert result.exit_code == 2
    assert "runtime.device" in _flat(result.stderr)
    assert not out.exists()


def test_existing_run_directory_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "summary.json").write_text("{}")
    result = _invoke(["run", _scenario(tmp_path, "name: x\n"), "--out", str(out)])
    assert result.exit_code == 2
    assert "already exists" in _flat(result.stderr)
    assert (out / "summary.json").read_text() == "{}"


def test_disconnected_topology_exits_2_naming_the_problem(tmp_path: Path) -> None:
    topo = tmp_path / "islands.yaml"
    topo.write_text(
        "nodes:\n"
        "  - {name: cloud, role: cloud, device_class: server}\n"
        "  - {name: a, role: client, device_class: phone}\n"
        "  - {name: b, role: client, device_class: phone}\n"
        "links:\n"
        "  - {a: cloud, b: a, bandwidth_mbps: 10, latency_ms: 1}\n"
    )
    out = tmp_path / "run"
    text = f"clients: {{count: 2}}\nnetwork: {{topology: {topo}}}\n"
    result = _invoke(["run", _scenario(tmp_path, text), "--out", str(out)])
    assert result.exit_code == 2
    message = _flat(result.stderr)
    assert "network.topology" in message and "'b'" in message
    assert "Traceback" not in result.output
    assert not out.exists()


def test_unknown_topology_name_exits_2(tmp_path: Path) -> None:
    text = "network: {topology: hexagon}\n"
    result = _invoke(["run", _scenario(tmp_path, text), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "network.topology" in _flat(result.stderr)


def test_unreachable_ray_address_exits_2_before_writing(tmp_path: Path) -> None:
    """Nobody listens on port 1: a clear error in seconds (Ray itself retries for minutes)."""
    out = tmp_path / "run"
    text = BASE + "dataset: {name: synthetic, train_samples: 60, test_samples: 30}\n"
    result = _invoke(
        ["run", _scenario(tmp_path, text), "--out", str(out), "--ray-address", "127.0.0.1:1"]
    )
    _assert_bad_input(result, "runtime.ray_address: nothing answers at '127.0.0.1:1'")
    assert not out.exists()


def test_dashboard_without_its_packages_exits_2(tmp_path: Path) -> None:
    import ray

    if ray._private.utils.get_dashboard_dependency_error() is None:
        pytest.skip("ray[default] is installed here")
    out = tmp_path / "run"
    text = BASE + "runtime: {backend: ray, dashboard: true}\n"
    result = _invoke(["run", _scenario(tmp_path, text), "--out", str(out)])
    _assert_bad_input(result, "runtime.dashboard: the Ray dashboard needs Ray's optional packages")
    assert not out.exists()


# --------------------------------------------------------------- a network that moves: bad files


@pytest.mark.parametrize(
    ("file", "text", "key", "needles"),
    [
        ("up.csv", "0,10\n2,5\n1,3\n", "network.dynamics.access.uplink_trace", [":3:", "time_s 1"]),
        ("up.csv", "", "network.dynamics.access.uplink_trace", ["empty trace"]),
        (
            "up.csv",
            "0,10\n1,-4\n",
            "network.dynamics.access.uplink_trace",
            [":2:", "bandwidth_mbps -4"],
        ),
        ("up.mahi", "5\n3\n", "network.dynamics.access.uplink_trace", [":2:", "comes after 5 ms"]),
        (
            "walk.csv",
            "0,c0,0,0\n1,c0,99999,0\n",
            "network.mobility.trace",
            [":2:", "outside the layout"],
        ),
    ],
    ids=["trace-not-monotone", "trace-empty", "trace-negative-rate", "mahimahi-back", "off-layout"],
)
def test_bad_dynamics_files_name_file_line_and_rule(
    tmp_path: Path, file: str, text: str, key: str, needles: list[str]
) -> None:
    path = tmp_path / file
    path.write_text(text)
    extra = ["--set", f"{key}={path}"]
    if key.startswith("network.mobility"):
        extra += ["--set", "network.mobility.model=trace"]
    result = _invoke(["validate", str(SMOKE), *extra])
    _assert_bad_input(result, key, file, *needles)


def test_mobility_on_a_network_without_cells_is_refused(tmp_path: Path) -> None:
    # random_geometric has no base stations to move between: the key has no effect there.
    result = _invoke(
        [
            "validate",
            _scenario(tmp_path, BASE + "network:\n  topology: random_geometric\n"),
            "--set",
            "network.mobility.model=random_waypoint",
        ]
    )
    _assert_bad_input(result, "network.mobility", "random_geometric")
