"""Same seed, same outputs: compare two run directories, every figure but host wall time.

For refactors that must not change behaviour: run a scenario before and after with the same seed
and `--out`s of their own, then

    .venv/bin/python benchmarks/compare_runs.py runs/before runs/after

`summary.json` must be equal with its key order (keys naming wall time dropped), and every CSV of
the first directory (trace, updates, rounds, tasks, metrics, inference, partition, heat maps)
byte for byte, but for the host-time columns of metrics.csv and tasks.csv. Exit 1 if any differs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

HOST_TIME_COLUMNS = {"metrics.csv": ["wall_time_s"], "tasks.csv": ["host_wall_s"]}


def without_wall_time(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_wall_time(v) for k, v in value.items() if "wall" not in k}
    if isinstance(value, list):
        return [without_wall_time(v) for v in value]
    return value


def differences(base: Path, new: Path) -> list[str]:
    """The files of `new` that differ from `base`'s (or are missing)."""
    found = []
    a, b = (without_wall_time(json.loads((d / "summary.json").read_text())) for d in (base, new))
    if json.dumps(a) != json.dumps(b):  # key order too
        found.append("summary.json")
    for path in sorted(base.rglob("*.csv")):
        rel = path.relative_to(base)
        other = new / rel
        if not other.exists():
            found.append(f"{rel} (missing)")
            continue
        drop = HOST_TIME_COLUMNS.get(str(rel))
        if drop:
            same = pd.read_csv(path).drop(columns=drop).to_csv(index=False) == pd.read_csv(
                other
            ).drop(columns=drop).to_csv(index=False)
        else:
            same = path.read_bytes() == other.read_bytes()
        if not same:
            found.append(str(rel))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path)
    parser.add_argument("new", type=Path)
    args = parser.parse_args()
    found = differences(args.base, args.new)
    files = len(list(args.base.rglob("*.csv"))) + 1
    print(f"{args.new}: {files} files compared with {args.base}, {len(found)} differ")
    for name in found:
        print(f"  differs: {name}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
