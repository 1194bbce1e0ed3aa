"""Make the synthetic link traces shipped here, from seeded processes (no recorded data):

    .venv/bin/python topologies/traces/make_traces.py     # rewrites the files below

- `lte-walk-up.csv`, `lte-walk-down.csv`: a phone walking in an LTE cell, one row per second for
  600 s (then the trace repeats: its last row closes the period): log-normal rates, an AR(1)
  process on the log of the rate (nmoe_sim.network.dynamics.synthetic.LognormalFading) with
  sigma 0.6 and a correlation time of 8 s, around means of 6 Mbit/s up and 13 Mbit/s down (the
  median LTE rates Huang et al. measured, MobiSys 2012); latency 25 ms up, 20 ms down.
- `wifi-office.mahi`: a Wi-Fi link in an office in Mahimahi's format (one line per 1,500-byte
  delivery opportunity, integer milliseconds, wrapping at its last line): 30 s alternating
  between a good state (20 Mbit/s, mean 5 s) and a bad one (2 Mbit/s, mean 1 s) held for
  exponential times, each millisecond's opportunities drawn as Poisson around the rate.

Seeds are fixed below: the same files every time.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from nmoe_sim.network.dynamics.synthetic import LognormalFading  # noqa: E402

PACKET_BITS = 1500 * 8


def lte_walk(path: Path, mean_mbps: float, latency_ms: float, seed: int) -> None:
    fading = LognormalFading(0.6, 8.0, 1.0, np.random.default_rng(seed))
    lines = ["time_s,bandwidth_mbps,latency_ms"]
    first = None
    for t in range(600):
        mbps = round(max(mean_mbps * fading.value_at(float(t))[0], 0.05), 3)
        first = first if first is not None else mbps
        lines.append(f"{t},{mbps},{latency_ms:g}")
    lines.append(f"600,{first},{latency_ms:g}")  # closes the period: the first row again
    path.write_text("\n".join(lines) + "\n")


def wifi_office(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    t_ms, good, lines = 0, True, []
    end_ms = 30_000
    while t_ms < end_ms:
        hold = max(1, int(rng.exponential(5000 if good else 1000)))
        rate = 20.0 if good else 2.0  # Mbit/s
        per_ms = rate * 1e3 / PACKET_BITS  # opportunities per millisecond
        for ms in range(t_ms, min(t_ms + hold, end_ms)):
            lines += [str(ms + 1)] * int(rng.poisson(per_ms))
        t_ms += hold
        good = not good
    if not lines or lines[-1] != str(end_ms):
        lines.append(str(end_ms))  # the period: the trace wraps at 30 s
    path.write_text("\n".join(lines) + "\n")


TRACES = ("lte-walk-up.csv", "lte-walk-down.csv", "wifi-office.mahi")


def make(folder: Path = HERE) -> None:
    lte_walk(folder / "lte-walk-up.csv", 6.0, 25.0, seed=1)
    lte_walk(folder / "lte-walk-down.csv", 13.0, 20.0, seed=2)
    wifi_office(folder / "wifi-office.mahi", seed=3)


def main() -> None:
    make()
    for name in TRACES:
        print(f"{name}: {(HERE / name).stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
