#!/usr/bin/env python3
"""Driver for tcp_rate_steps.cc (ns-3 3.37): reproduce ns3_reference.csv rows, generate
ns3_rate_steps.csv, and check it. See ../README.md ("Rate steps").

    ./build.sh                                   # -> /tmp/ns3build/tcp_rate_steps
    python3 run_grid.py reproduce [--all]        # compare with ../ns3_reference.csv
    python3 run_grid.py generate                 # write ../ns3_rate_steps.csv (+ diagnostics)
    python3 run_grid.py check                    # sanity checks on ../ns3_rate_steps.csv

Only the standard library; the binary is taken from $NS3BUILD (default /tmp/ns3build).
"""

import argparse
import collections
import csv
import itertools
import math
import os
import subprocess
import sys
import time
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
FIDELITY = os.path.dirname(HERE)
REFERENCE = os.path.join(FIDELITY, "ns3_reference.csv")
OUTPUT = os.path.join(FIDELITY, "ns3_rate_steps.csv")
DIAGNOSTICS = os.path.join(HERE, "rate_steps_diagnostics.csv")
BINARY = os.path.join(os.environ.get("NS3BUILD", "/tmp/ns3build"), "tcp_rate_steps")

SMALL_BUFFERS = (131072, 131072)  # ns-3's defaults
LINUX_BUFFERS = (4194304, 6291456)  # Linux's stock maxima
SEGMENT = 1448
INITIAL_WINDOW = 10
LINK_HEADER = 2
WIRE_PACKET = 1500 + LINK_HEADER  # a full segment on the wire (bytes)

COLUMNS = [
    "reference",
    "rate_mbps",
    "one_way_delay_ms",
    "loss",
    "size_bytes",
    "flows",
    "link_header_bytes",
    "send_buffer_bytes",
    "receive_buffer_bytes",
    "congestion_control",
    "initial_window_segments",
    "segment_bytes",
    "seed",
    "flow",
    "t_connect_to_last_byte_s",
    "t_established_to_last_byte_s",
]
REFERENCE_LABEL = "ns-3 3.37 rate steps"

RateSteps = Sequence[tuple[float, float]]  # [(t_s, mbps), ...], t = 0 first


# --------------------------------------------------------------------------------------------
# running the binary


def run_config(
    rates: RateSteps,
    delay_ms: float,
    size: int,
    flows: int,
    buffers: tuple[int, int],
    extra: Sequence[str] = (),
) -> list[dict]:
    """rates: [(t_s, mbps), ...] with t = 0 first. Returns one dict per flow."""
    cmd = [
        BINARY,
        "--steps=" + steps_string(rates),
        f"--delay={delay_ms:g}",
        f"--size={size:d}",
        f"--flows={flows:d}",
        f"--sndbuf={buffers[0]:d}",
        f"--rcvbuf={buffers[1]:d}",
        f"--segment={SEGMENT:d}",
        f"--iw={INITIAL_WINDOW:d}",
        *extra,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {out.stderr[-2000:]}")
    result, progress = [], {}
    for line in out.stdout.split():
        f = line.split(",")
        if f[0] == "P":
            progress[float(f[1])] = int(f[2])
            continue
        result.append(
            {
                "flow": int(f[0]),
                "connect_ns": int(f[1]),
                "established_ns": int(f[2]),
                "retx_segments": int(f[3]),
                "rto_events": int(f[4]),
                "fast_recoveries": int(f[5]),
                "max_queue_pkts": int(f[6]),
                "at_steps": f[7] if len(f) > 7 else "",
            }
        )
    assert len(result) == flows, (cmd, out.stdout)
    for r in result:
        r["progress_ns"] = progress
    return result


def seconds(ns: int) -> str:
    """Nanoseconds -> seconds, written as ns3_reference.csv writes them (shortest repr)."""
    return repr(ns / 1e9)


def fmt_num(x: float) -> str:
    """A step time or rate, shortest form: 0.5, 2, 0.0126."""
    s = f"{x:.6f}".rstrip("0").rstrip(".")
    return s if s else "0"


def steps_string(rates: RateSteps) -> str:
    return ";".join(f"{fmt_num(t)}:{fmt_num(r)}" for t, r in rates)


def parse_steps(s: str) -> list[tuple[float, float]]:
    return [(float(a), float(b)) for a, b in (item.split(":") for item in s.split(";"))]


def round_sig(x: float, digits: int) -> float:
    if x <= 0:
        return x
    return round(x, digits - 1 - math.floor(math.log10(x)))


def read_rows(path: str) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def read_header(path: str) -> list[str]:
    with open(path) as f:
        return next(csv.reader(f))


def run_all(jobs: list[tuple[Hashable, tuple]], workers: int) -> dict:
    """jobs: list of (key, args). Returns {key: result}, in parallel on `workers` processes."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {key: pool.submit(run_config, *args) for key, args in jobs}
        return {key: f.result() for key, f in futures.items()}


# --------------------------------------------------------------------------------------------
# reproduction of ns3_reference.csv


def reproduce(args: argparse.Namespace) -> int:
    rows = read_rows(REFERENCE)
    groups = collections.OrderedDict()
    for r in rows:
        key = (
            float(r["rate_mbps"]),
            float(r["one_way_delay_ms"]),
            int(r["size_bytes"]),
            int(r["flows"]),
            int(r["send_buffer_bytes"]),
            int(r["receive_buffer_bytes"]),
        )
        groups.setdefault(key, []).append(r)
    if args.all:
        keys = list(groups)
    else:
        # A fixed sample: both rates, the three delays, 1/2/10 flows, both buffer settings,
        # sizes up to 10 MB, among them the send-buffer-bound ones that are sensitive to how
        # the application writes.
        keys = [
            (1.0, 1.0, 1000, 2, 131072, 131072),
            (1.0, 10.0, 100000, 1, 4194304, 6291456),
            (1.0, 50.0, 230000, 2, 131072, 131072),
            (1.0, 1.0, 1000000, 1, 131072, 131072),
            (1.0, 50.0, 1000000, 1, 131072, 131072),
            (1.0, 10.0, 1000000, 2, 4194304, 6291456),
            (100.0, 1.0, 10000, 10, 131072, 131072),
            (100.0, 10.0, 230000, 1, 4194304, 6291456),
            (100.0, 50.0, 1000000, 1, 131072, 131072),
            (100.0, 10.0, 1000000, 2, 131072, 131072),
            (100.0, 50.0, 10000000, 1, 4194304, 6291456),
            (100.0, 1.0, 10000000, 2, 131072, 131072),
        ]
    extra = ["--app=bulk", f"--sendsize={args.sendsize:d}"] if args.sendsize else []
    jobs = [(k, ([(0.0, k[0])], k[1], k[2], k[3], (k[4], k[5]), extra)) for k in keys]
    t0 = time.time()
    results = run_all(jobs, args.jobs)
    n = exact_us = exact_str = 0
    worst = []
    for k in keys:
        res = {x["flow"]: x for x in results[k]}
        for r in groups[k]:
            m = res[int(r["flow"])]
            n += 1
            ours = (seconds(m["connect_ns"]), seconds(m["established_ns"]))
            theirs = (r["t_connect_to_last_byte_s"], r["t_established_to_last_byte_s"])
            du = [
                round(float(a) * 1e6) - round(float(b) * 1e6)
                for a, b in zip(ours, theirs, strict=True)
            ]
            if du == [0, 0]:
                exact_us += 1
            else:
                worst.append((k, r["flow"], du))
            exact_str += ours == theirs
    print(
        f"configurations {len(keys)}, rows {n}: equal to the microsecond {exact_us}, "
        f"identical text {exact_str} ({time.time() - t0:.0f} s)"
    )
    for (rate, delay, size, flows, sndbuf, rcvbuf), flow, du in worst[:30]:
        print(
            f"  differs: rate {rate:g} delay {delay:g} size {size:d} flows {flows:d} "
            f"buffers {sndbuf:d}/{rcvbuf:d} flow {flow}: {du[0]:+d}/{du[1]:+d} us"
        )
    return 0 if exact_us == n else 1


# --------------------------------------------------------------------------------------------
# the rate-step grid

# name -> rates in Mbps, first one at t = 0
PROFILES = collections.OrderedDict(
    [
        ("10>1", [10, 1]),
        ("1>10", [1, 10]),
        ("100>10", [100, 10]),
        ("10>100", [10, 100]),
        ("50>5>50", [50, 5, 50]),
        ("50>10>100>5>50", [50, 10, 100, 5, 50]),
    ]
)
DELAYS_MS = [1, 10, 40]
KB, MB = 1000, 1000000
# (size, flows, buffers, timing) per (profile, delay). Single flows: three sizes early, two
# late, both buffer settings. Several flows: 1 MB each, 2 and 4 flows, each with one buffer
# setting and one timing, rotated with the delay so that every pair of (flows, timing, buffers)
# values occurs somewhere in the grid.
SINGLE = [
    (size, 1, buffers, timing)
    for buffers in (SMALL_BUFFERS, LINUX_BUFFERS)
    for timing, sizes in (("early", (100 * KB, 1 * MB, 10 * MB)), ("late", (1 * MB, 10 * MB)))
    for size in sizes
]
MULTI = {
    1: [(1 * MB, 2, SMALL_BUFFERS, "early"), (1 * MB, 4, LINUX_BUFFERS, "late")],
    10: [(1 * MB, 2, LINUX_BUFFERS, "late"), (1 * MB, 4, SMALL_BUFFERS, "early")],
    40: [(1 * MB, 2, SMALL_BUFFERS, "late"), (1 * MB, 4, LINUX_BUFFERS, "early")],
}
# step times: early = in the first RTTs (slow start), as multiples of t_early (the same for every
# size); late = when these fractions of all the bytes (all flows together) had been delivered in
# the constant run at the initial rate, rounded to 2 significant digits
EARLY_MULTIPLES = {2: [1], 3: [1, 4], 5: [1, 2, 4, 8]}
LATE_FRACTIONS = {2: [0.5], 3: [0.3, 0.6], 5: [0.2, 0.4, 0.6, 0.8]}


def t_early(delay_ms: float, rate_mbps: float) -> float:
    """Handshake plus two round trips of propagation, plus the time to put the initial window of
    one flow on the wire at the initial rate: the first rate step falls in slow start."""
    t = 6 * delay_ms / 1e3 + INITIAL_WINDOW * WIRE_PACKET * 8 / (rate_mbps * 1e6)
    return round_sig(t, 3)


PROGRESS = sorted({f for fs in LATE_FRACTIONS.values() for f in fs})


def schedule(
    profile: str, timing: str, delay_ms: float, progress_ns: dict[float, int]
) -> list[tuple[float, float]]:
    rates = PROFILES[profile]
    if timing == "early":
        te = t_early(delay_ms, rates[0])
        times = [round_sig(m * te, 3) for m in EARLY_MULTIPLES[len(rates)]]
    else:
        times = [round_sig(progress_ns[f] / 1e9, 2) for f in LATE_FRACTIONS[len(rates)]]
    return [(0.0, float(rates[0]))] + [(t, float(r)) for t, r in zip(times, rates[1:], strict=True)]


def design() -> list[tuple]:
    """[(profile, timing, delay, size, flows, buffers)]"""
    out = []
    for profile in PROFILES:
        for d in DELAYS_MS:
            for size, flows, buffers, timing in SINGLE + MULTI[d]:
                out.append((profile, timing, d, size, flows, buffers))
    return out


def generate(args: argparse.Namespace) -> int:
    t_start = time.time()
    cells = design()
    rates_all = sorted({r for rs in PROFILES.values() for r in rs})
    # phase 1: constant rates (baselines, and T0 for the late steps)
    base_keys = sorted(
        {
            (float(r), d, size, flows, buffers)
            for (_, _, d, size, flows, buffers) in cells
            for r in rates_all
        }
    )
    progress = ["--progress=" + ",".join(f"{f:g}" for f in PROGRESS)]
    base = run_all([(k, ([(0.0, k[0])], *k[1:], progress)) for k in base_keys], args.jobs)
    t_phase1 = time.time() - t_start
    # phase 2: steps
    jobs, skipped, meta = [], [], {}
    for cell in cells:
        profile, timing, d, size, flows, buffers = cell
        rate0 = float(PROFILES[profile][0])
        b = base[(rate0, d, size, flows, buffers)]
        t0 = max(x["connect_ns"] for x in b) / 1e9
        rates = schedule(profile, timing, d, b[0]["progress_ns"])
        if t0 <= rates[1][0]:
            skipped.append((cell, t0, rates))
            continue
        key = (tuple(rates), d, size, flows, buffers)
        if key in meta:  # the same run twice (cannot happen with this design, but be safe)
            continue
        meta[key] = (profile, timing, t0)
        jobs.append((key, (list(rates), d, size, flows, buffers)))
    steps = run_all(jobs, args.jobs)
    elapsed = time.time() - t_start

    def row(
        rates: RateSteps, d: float, size: int, flows: int, buffers: tuple[int, int], r: dict
    ) -> dict:
        return {
            "reference": REFERENCE_LABEL,
            "rate_mbps": repr(float(rates[0][1])),
            "one_way_delay_ms": repr(float(d)),
            "loss": "0.0",
            "size_bytes": size,
            "flows": flows,
            "link_header_bytes": LINK_HEADER,
            "send_buffer_bytes": buffers[0],
            "receive_buffer_bytes": buffers[1],
            "congestion_control": "TcpCubic",
            "initial_window_segments": INITIAL_WINDOW,
            "segment_bytes": SEGMENT,
            "seed": 1,
            "flow": r["flow"],
            "t_connect_to_last_byte_s": seconds(r["connect_ns"]),
            "t_established_to_last_byte_s": seconds(r["established_ns"]),
            "rate_steps": steps_string(rates),
        }

    out_rows, diag_rows = [], []
    for (rate, d, size, flows, buffers), res in sorted(
        base.items(), key=lambda kv: (kv[0][1], kv[0][0], kv[0][2], kv[0][3], kv[0][4])
    ):
        for r in res:
            out_rows.append(row([(0.0, rate)], d, size, flows, buffers, r))
            diag_rows.append(("constant", "", "", r))
    for key, _ in jobs:
        rates, d, size, flows, buffers = key
        profile, timing, t0 = meta[key]
        for r in steps[key]:
            out_rows.append(row(list(rates), d, size, flows, buffers, r))
            diag_rows.append((profile, timing, seconds(round(t0 * 1e9)), r))
    with open(OUTPUT, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[*COLUMNS, "rate_steps"], lineterminator="\n")
        w.writeheader()
        w.writerows(out_rows)
    with open(DIAGNOSTICS, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(
            [
                "rate_steps",
                "one_way_delay_ms",
                "size_bytes",
                "flows",
                "send_buffer_bytes",
                "flow",
                "profile",
                "timing",
                "t0_constant_initial_rate_s",
                "state_at_steps",
                "retransmitted_segments",
                "rto_events",
                "fast_recoveries",
                "max_device_queue_packets",
            ]
        )
        for (profile, timing, t0, r), o in zip(diag_rows, out_rows, strict=True):
            w.writerow(
                [
                    o["rate_steps"],
                    o["one_way_delay_ms"],
                    o["size_bytes"],
                    o["flows"],
                    o["send_buffer_bytes"],
                    o["flow"],
                    profile,
                    timing,
                    t0,
                    r["at_steps"],
                    r["retx_segments"],
                    r["rto_events"],
                    r["fast_recoveries"],
                    r["max_queue_pkts"],
                ]
            )
    with_steps = sum(1 for o in out_rows if ";" in o["rate_steps"])
    print(
        f"constant-rate runs {len(base_keys)} ({t_phase1:.0f} s), rate-step runs {len(jobs)}, "
        f"skipped {len(skipped)}, rows {len(out_rows)} ({with_steps} with steps), "
        f"{elapsed:.0f} s in all"
    )
    for cell, t0, rates in skipped:
        print(
            f"  skipped (every flow done at {t0:.4f} s, before the first step at "
            f"{rates[1][0]:g} s): {cell}"
        )
    return 0


# --------------------------------------------------------------------------------------------
# checks


def check(args: argparse.Namespace) -> int:
    rows = read_rows(OUTPUT)
    ref_header = read_header(REFERENCE)
    header = read_header(OUTPUT)
    problems = 0
    if header != [*ref_header, "rate_steps"]:
        print("columns differ from ns3_reference.csv + rate_steps:", header)
        problems += 1
    for r in rows:
        steps = parse_steps(r["rate_steps"])
        ok = (
            steps[0][0] == 0.0
            and float(r["rate_mbps"]) == steps[0][1]
            and all(a[0] < b[0] for a, b in itertools.pairwise(steps))
            and 0 < float(r["t_established_to_last_byte_s"]) < float(r["t_connect_to_last_byte_s"])
        )
        if not ok:
            print("malformed row:", r)
            problems += 1
    # flows of one run: one row each
    runs = collections.defaultdict(list)
    for r in rows:
        runs[
            (
                r["rate_steps"],
                r["one_way_delay_ms"],
                r["size_bytes"],
                r["flows"],
                r["send_buffer_bytes"],
            )
        ].append(int(r["flow"]))
    for k, fl in runs.items():
        if sorted(fl) != list(range(int(k[3]))):
            print("flows missing or repeated:", k, fl)
            problems += 1
    runs_with_steps = sum(1 for k in runs if ";" in k[0])
    print(
        f"rows {len(rows)}, runs {len(runs)} ({runs_with_steps} with rate steps); "
        f"columns as ns3_reference.csv + rate_steps; malformed: {problems}"
    )

    # monotone in size: same rate_steps, delay, flows, buffers -> the last flow's time (and each
    # flow's) grows with the size
    by = collections.defaultdict(dict)
    for r in rows:
        k = (r["rate_steps"], r["one_way_delay_ms"], r["flows"], r["send_buffer_bytes"])
        by[k].setdefault(int(r["size_bytes"]), []).append(float(r["t_connect_to_last_byte_s"]))
    mono_pairs = mono_bad = 0
    for k, sizes in by.items():
        ss = sorted(sizes)
        for a, b in itertools.pairwise(ss):
            mono_pairs += 1
            if max(sizes[b]) <= max(sizes[a]):
                mono_bad += 1
                print("  not monotone in size:", k, a, b, max(sizes[a]), max(sizes[b]))
    print(f"monotone in size (last flow, same schedule): {mono_pairs} pairs, {mono_bad} violations")

    # bracket: a run with steps against constant runs at its lowest and highest rate (same
    # delay, size, flows, buffers). Must hold for a single flow and for the last flow of a run
    # (the whole job); a single flow of several may legitimately leave the bracket, as the
    # steps change how the flows share the link.
    const = {}
    for r in rows:
        if ";" not in r["rate_steps"]:
            const[
                (
                    float(r["rate_mbps"]),
                    r["one_way_delay_ms"],
                    r["size_bytes"],
                    r["flows"],
                    r["send_buffer_bytes"],
                    r["flow"],
                )
            ] = float(r["t_connect_to_last_byte_s"])
    stats = collections.Counter()
    runs_steps = collections.defaultdict(list)
    for r in rows:
        if ";" not in r["rate_steps"]:
            continue
        steps = parse_steps(r["rate_steps"])
        lo, hi = min(x[1] for x in steps), max(x[1] for x in steps)
        k = (r["one_way_delay_ms"], r["size_bytes"], r["flows"], r["send_buffer_bytes"], r["flow"])
        t = float(r["t_connect_to_last_byte_s"])
        t_hi, t_lo = const[(hi, *k)], const[(lo, *k)]
        runs_steps[(r["rate_steps"], *k[:4])].append((t, t_hi, t_lo, lo, hi))
        kind = "single" if r["flows"] == "1" else "one of several"
        stats[kind] += 1
        if not t_hi < t < t_lo:
            stats[kind + " outside"] += 1
            delay, size, flows, sndbuf, flow = k
            print(
                f"  {kind} flow outside (constant {hi:g}, constant {lo:g} Mbps): "
                f"{r['rate_steps']} delay {delay} size {size} flows {flows} buffers {sndbuf} "
                f"flow {flow}: {t:.6f} not in ({t_hi:.6f}, {t_lo:.6f})"
            )
    for k, v in runs_steps.items():
        t, t_hi, t_lo = (max(x[i] for x in v) for i in range(3))
        is101 = [x[1] for x in parse_steps(k[0])] == [10.0, 1.0]
        stats["runs"] += 1
        stats["runs 10>1"] += is101
        if not t_hi < t < t_lo:
            stats["runs outside"] += 1
            stats["runs 10>1 outside"] += is101
            rate_steps, delay, size, flows, sndbuf = k
            print(
                f"  run outside (last flow): {rate_steps} delay {delay} size {size} "
                f"flows {flows} buffers {sndbuf}: {t:.6f} not in ({t_hi:.6f}, {t_lo:.6f})"
            )
    print(
        "between the constant highest- and lowest-rate times: "
        f"runs (last flow) {stats['runs']}, outside {stats['runs outside']}; "
        f"of them 10 -> 1 runs {stats['runs 10>1']}, outside {stats['runs 10>1 outside']}; "
        f"single-flow rows {stats['single']}, outside {stats['single outside']}; "
        f"flows of multi-flow runs {stats['one of several']}, "
        f"outside {stats['one of several outside']} (allowed: sharing changes)"
    )
    return 1 if problems else 0


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("reproduce", help="compare with ns3_reference.csv")
    p.add_argument("--all", action="store_true", help="every configuration (several minutes)")
    p.add_argument(
        "--sendsize", type=int, default=0, help="use stock BulkSend with this write size instead"
    )
    p.add_argument("-j", "--jobs", type=int, default=1)
    p.set_defaults(func=reproduce)
    p = sub.add_parser("generate", help="write ns3_rate_steps.csv")
    p.add_argument("-j", "--jobs", type=int, default=1)
    p.set_defaults(func=generate)
    p = sub.add_parser("check", help="sanity checks on ns3_rate_steps.csv")
    p.set_defaults(func=check)
    args = ap.parse_args()
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
