"""Checkpoints: what a run has finished, kept beside its target so an interrupted run resumes.

While a run works, `.<out name>.partial/` beside the target holds:

- `manifest.json`: the resolved scenario, its hash, and the code fingerprint it ran with;
- `progress.pkl`: the finished methods' results and the Recorder's records (rewritten
  atomically after every finished method and every pipeline's shared stages 1-2);
- `shared-<pipeline>.pkl`: what a pipeline's stages 1-2 left (client states, test features,
  expert probabilities), written once when they finish;
- `lock`: held (flock) by the process running; the kernel drops it when that process dies, so a
  killed run's checkpoint can be resumed at once;
- `run/`: the staging folder of the final directory, renamed into place when the run ends.

A resume must use the same scenario and code: methods are independent (their random streams are
named per method) and gating branches depend only on stages 1-2, so finished work restored from
here is exactly what running it again would give.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pickle
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import nmoe_sim
from nmoe_sim.telemetry.output import OutputError, check_output_dir, is_complete

MANIFEST = "manifest.json"
PROGRESS = "progress.pkl"
LOCK = "lock"
STAGING = "run"


class ResumeRefused(OutputError):
    """The checkpoint was made by another scenario or another version of the code."""


def checkpoint_dir(out_dir: Path) -> Path:
    """Found again by the target's name (not by pid): `runs/x` -> `runs/.x.partial`."""
    return out_dir.parent / f".{out_dir.name}.partial"


def code_fingerprint() -> str:
    """The package version and a hash of every `nmoe_sim/**/*.py` source."""
    root = Path(nmoe_sim.__file__).parent
    digest = hashlib.sha256(nmoe_sim.__version__.encode())
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return f"{nmoe_sim.__version__}+{digest.hexdigest()[:16]}"


def scenario_hash(scenario: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(scenario, sort_keys=True).encode()).hexdigest()


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(_flatten(inner, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}


def scenario_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """`key: old -> new` for every dotted key whose value differs."""
    a, b = _flatten(old), _flatten(new)
    missing = object()
    return [
        f"{key}: {a.get(key, missing)!r} -> {b.get(key, missing)!r}".replace(
            repr(missing), "(absent)"
        )
        for key in sorted(a.keys() | b.keys())
        if a.get(key, missing) != b.get(key, missing)
    ]


def _write_atomic(path: Path, data: bytes) -> None:
    """Never a half-written file under the final name: write aside, then rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _pipeline_file(pipeline: str) -> str:
    return f"shared-{pipeline.replace('/', '_')}.pkl"


@dataclass
class Checkpoint:
    """An open checkpoint folder whose lock this process holds."""

    out_dir: Path
    folder: Path
    resumed: bool
    lock: IO[str]
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def staging(self) -> Path:
        return self.folder / STAGING

    # -- progress ------------------------------------------------------------------------------

    def load_progress(self) -> dict[str, Any] | None:
        """What the last boundary saved: {"results", "recorder", "shared", "wall_s"}."""
        path = self.folder / PROGRESS
        if not path.is_file():
            return None
        with open(path, "rb") as fh:
            return pickle.load(fh)  # our own file, written by this code version

    def save_progress(self, progress: dict[str, Any]) -> None:
        _write_atomic(self.folder / PROGRESS, pickle.dumps(progress, pickle.HIGHEST_PROTOCOL))

    def save_shared(self, pipeline: str, shared: Any) -> None:
        _write_atomic(
            self.folder / _pipeline_file(pipeline), pickle.dumps(shared, pickle.HIGHEST_PROTOCOL)
        )

    def load_shared(self, pipeline: str) -> Any:
        with open(self.folder / _pipeline_file(pipeline), "rb") as fh:
            return pickle.load(fh)

    # -- end -----------------------------------------------------------------------------------

    def finish(self) -> None:
        """The run directory is in place: the checkpoint has done its job."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self.release()

    def release(self) -> None:
        if not self.lock.closed:
            fcntl.flock(self.lock, fcntl.LOCK_UN)
            self.lock.close()


def _lock(folder: Path, out_dir: Path) -> IO[str]:
    fh = open(folder / LOCK, "a+")  # noqa: SIM115  # held open for the whole run
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "another process"
        fh.close()
        raise OutputError(
            f"another run is writing {out_dir} ({holder}); wait for it to end, or choose "
            "another --out"
        ) from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"pid {os.getpid()}\n")
    fh.flush()
    return fh


def open_checkpoint(out_dir: Path, scenario: dict[str, Any], resume: bool) -> Checkpoint:
    """Take (or start) the checkpoint of `out_dir`, refusing what cannot be continued."""
    folder = checkpoint_dir(out_dir)
    if resume and is_complete(out_dir):
        _remove_leftover(folder, out_dir)
        raise OutputError(f"{out_dir} is already complete (it has summary.json); nothing to resume")
    check_output_dir(out_dir)
    if resume and not (folder / MANIFEST).is_file():
        raise OutputError(
            f"no checkpoint to resume for {out_dir} (looked for {folder}); "
            "run without --resume to start it"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = _lock(folder, out_dir)
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(
            f"cannot write beside {out_dir} ({folder}: {exc.strerror}); choose another --out"
        ) from None
    try:
        if resume:
            _check_manifest(folder, scenario)
        elif (folder / MANIFEST).is_file():
            raise OutputError(
                f"an interrupted run of {out_dir} left a checkpoint in {folder}; continue it "
                "with --resume, or remove that folder to start over"
            )
        else:
            # Whatever a run killed before its first manifest left here is of no use.
            for stale in folder.iterdir():
                if stale.name != LOCK:
                    shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
            manifest = {
                "scenario": scenario,
                "scenario_sha256": scenario_hash(scenario),
                "code": code_fingerprint(),
            }
            _write_atomic(folder / MANIFEST, json.dumps(manifest, indent=2).encode())
    except BaseException:
        lock.close()
        raise
    return Checkpoint(out_dir, folder, resume, lock)


def _remove_leftover(folder: Path, out_dir: Path) -> None:
    """A checkpoint beside a complete run (stopped between the rename and the cleanup) is of no
    further use, unless a run still holds it."""
    if not folder.is_dir():
        return
    try:
        _lock(folder, out_dir).close()
    except (OutputError, OSError):
        return
    shutil.rmtree(folder, ignore_errors=True)


def _check_manifest(folder: Path, scenario: dict[str, Any]) -> None:
    manifest = json.loads((folder / MANIFEST).read_text())
    if manifest["scenario_sha256"] != scenario_hash(scenario):
        changes = scenario_changes(manifest["scenario"], scenario)
        raise ResumeRefused(
            f"cannot resume: the scenario differs from the checkpoint's in {len(changes)} "
            f"key(s): {'; '.join(changes[:8])}{' ...' if len(changes) > 8 else ''}; resume with "
            f"the same scenario and --set/--seed options, or remove {folder} to start over"
        )
    code = code_fingerprint()
    if manifest["code"] != code:
        raise ResumeRefused(
            f"cannot resume: the code changed since the checkpoint (nmoe_sim sources differ: "
            f"{manifest['code']} then, {code} now), so finished work might not match what this "
            f"version computes; rerun from the start (remove {folder}) or go back to that code"
        )
