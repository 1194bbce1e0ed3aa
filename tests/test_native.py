"""The compiled network core is used only when built from the current sources: a stale build
(any network source edited since), another interpreter's build, or a missing file means the
pure-Python modules run."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from nmoe_sim import native
from nmoe_sim.network import flows, ramp  # noqa: F401  # (imported: checked below)
from nmoe_sim.network.transports import base, fluid, tcp  # noqa: F401


def _fake_build(tmp_path: Path) -> tuple[Path, Path]:
    package = tmp_path / "nmoe_sim"
    (package / "network" / "transports").mkdir(parents=True)
    (package / "network" / "flows.py").write_text("x = 1\n")
    (package / "network" / "transports" / "tcp.py").write_text("y = 2\n")
    build = tmp_path / "build"
    (build / "nmoe_sim" / "network").mkdir(parents=True)
    (build / "nmoe_sim" / "network" / "flows.so").write_bytes(b"")
    manifest = {
        "cache_tag": sys.implementation.cache_tag,
        "modules": list(native.COMPILED),
        "sources": native.source_hashes(package),
        "files": {"nmoe_sim.network.flows": "nmoe_sim/network/flows.so"},
    }
    (build / native.MANIFEST).write_text(json.dumps(manifest))
    return build, package


def test_a_current_build_is_used(tmp_path: Path) -> None:
    build, package = _fake_build(tmp_path)
    assert native.current_modules(build, package) == {
        "nmoe_sim.network.flows": build / "nmoe_sim" / "network" / "flows.so"
    }


def test_editing_any_network_source_falls_back_to_python(tmp_path: Path) -> None:
    build, package = _fake_build(tmp_path)
    (package / "network" / "transports" / "tcp.py").write_text("y = 3\n")  # not even compiled
    assert native.current_modules(build, package) is None


def test_a_new_network_source_falls_back_to_python(tmp_path: Path) -> None:
    build, package = _fake_build(tmp_path)
    (package / "network" / "routing.py").write_text("z = 0\n")
    assert native.current_modules(build, package) is None


def test_a_build_of_another_list_of_modules_falls_back_to_python(tmp_path: Path) -> None:
    """Adding a module to `COMPILED` edits no network source: the old build must not pass."""
    build, package = _fake_build(tmp_path)
    manifest = json.loads((build / native.MANIFEST).read_text())
    fewer = {**manifest, "modules": list(native.COMPILED)[:-1]}
    (build / native.MANIFEST).write_text(json.dumps(fewer))
    assert native.current_modules(build, package) is None


def test_another_interpreters_build_or_a_missing_file_falls_back_to_python(
    tmp_path: Path,
) -> None:
    build, package = _fake_build(tmp_path)
    manifest = json.loads((build / native.MANIFEST).read_text())
    (build / native.MANIFEST).write_text(json.dumps({**manifest, "cache_tag": "cpython-27"}))
    assert native.current_modules(build, package) is None
    (build / native.MANIFEST).write_text(json.dumps(manifest))
    (build / "nmoe_sim" / "network" / "flows.so").unlink()
    assert native.current_modules(build, package) is None
    assert native.current_modules(tmp_path / "never-built", package) is None


def test_this_process_runs_the_compiled_core_exactly_when_a_current_build_exists() -> None:
    """On a machine where install.sh could compile, every compiled module is; where it could
    not (or NMOE_SIM_PURE_PYTHON=1), none is: never a mix."""
    wanted = os.environ.get("NMOE_SIM_PURE_PYTHON") != "1" and native.current_modules() is not None
    modules = [sys.modules[name] for name in native.COMPILED]
    assert [native.is_compiled(m) for m in modules] == [wanted] * len(native.COMPILED)
