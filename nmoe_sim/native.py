"""The network core compiled with mypyc, used only when it was built from the current sources.

`bash install.sh` compiles the flow network, slow-start ramps and the two transports (the code
every simulated transfer runs through: 1.2-1.6x faster in `benchmarks/clock.py`) into
`build/native/`, with a manifest of the hashes of every source under `nmoe_sim/network/`. At
import, `use_if_current()` serves those modules compiled only if every hash still matches:
edit any network file and the pure-Python modules run until the next build, never a stale
binary. Nothing is compiled in place, so Python's own preference for an extension module next to
its source never applies. `NMOE_SIM_PURE_PYTHON=1` forces the pure-Python modules.

Build by hand: `.venv/bin/python -c "import nmoe_sim.native as n; n.build()"` (about 30 s; it
needs a C compiler and Python's headers: install.sh carries on in pure Python without them).
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

COMPILED = (
    "nmoe_sim.network.ramp",
    "nmoe_sim.network.flows",
    "nmoe_sim.network.transports.base",
    "nmoe_sim.network.transports.fluid",
    "nmoe_sim.network.transports.tcp",
)
GROUP = "nmoe_sim_native"  # mypyc's shared library for the group: `nmoe_sim_native__mypyc`
PACKAGE_DIR = Path(__file__).resolve().parent
BUILD_DIR = PACKAGE_DIR.parent / "build" / "native"
MANIFEST = "manifest.json"


def source_hashes(package_dir: Path = PACKAGE_DIR) -> dict[str, str]:
    """sha256 of every source the compiled modules are built from or against."""
    network = package_dir / "network"
    return {
        str(path.relative_to(package_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(network.rglob("*.py"))
    }


def current_modules(
    build_dir: Path = BUILD_DIR, package_dir: Path = PACKAGE_DIR
) -> dict[str, Path] | None:
    """Module name -> compiled file, if the build in `build_dir` matches this interpreter and
    every source hash; else None (run the pure-Python modules)."""
    try:
        manifest = json.loads((build_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("cache_tag") != sys.implementation.cache_tag:
        return None
    if manifest.get("sources") != source_hashes(package_dir):
        return None
    if manifest.get("modules") != list(COMPILED):  # built for another list of modules
        return None
    files = {name: build_dir / rel for name, rel in manifest.get("files", {}).items()}
    if not files or not all(path.is_file() for path in files.values()):
        return None
    return files


class _CompiledFinder(importlib.abc.MetaPathFinder):
    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        file = self.files.get(fullname)
        if file is None:
            return None
        loader = importlib.machinery.ExtensionFileLoader(fullname, str(file))
        return importlib.util.spec_from_file_location(fullname, file, loader=loader)


def use_if_current() -> bool:
    """Serve the compiled network core if it is current (see the module doc); True if so."""
    if os.environ.get("NMOE_SIM_PURE_PYTHON") == "1":
        return False
    if any(isinstance(f, _CompiledFinder) for f in sys.meta_path):
        return True
    files = current_modules()
    if files is None:
        return False
    sys.meta_path.insert(0, _CompiledFinder(files))
    return True


def is_compiled(module: ModuleType) -> bool:
    return not str(getattr(module, "__file__", "")).endswith(".py")


def build(build_dir: Path = BUILD_DIR) -> None:
    """Compile `COMPILED` with mypyc into `build_dir` and write its manifest last."""
    from mypyc.build import mypycify  # a dev dependency: only the build needs it
    from setuptools import setup  # type: ignore[import-untyped]

    root = PACKAGE_DIR.parent
    sources = [str(Path(*name.split(".")).with_suffix(".py")) for name in COMPILED]
    hashes = source_hashes()
    shutil.rmtree(build_dir, ignore_errors=True)
    with tempfile.TemporaryDirectory() as temp:
        cwd = os.getcwd()
        os.chdir(root)  # mypyc names modules by their path from here
        try:
            setup(
                name="nmoe-sim-native",
                ext_modules=mypycify(sources, group_name=GROUP),
                script_args=["build_ext", "--build-lib", str(build_dir), "--build-temp", temp],
            )
        finally:
            os.chdir(cwd)
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    files = {name: str(Path(*name.split("."))) + suffix for name in COMPILED}
    files[f"{GROUP}__mypyc"] = f"{GROUP}__mypyc{suffix}"
    missing = [rel for rel in files.values() if not (build_dir / rel).is_file()]
    if missing:
        raise RuntimeError(f"mypyc did not produce {missing} in {build_dir}")
    if source_hashes() != hashes:
        raise RuntimeError("nmoe_sim/network changed during the build; build again")
    manifest = {
        "cache_tag": sys.implementation.cache_tag,
        "modules": list(COMPILED),
        "sources": hashes,
        "files": files,
    }
    (build_dir / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
