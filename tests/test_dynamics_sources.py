"""Where link changes come from: trace files (Mahimahi, CSV), seeded fading and bursty loss, and
the scenario's `network.dynamics` targets."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from nmoe_sim.config import ScenarioError, load_scenario
from nmoe_sim.network.build import build_network
from nmoe_sim.network.dynamics.steps import Steps
from nmoe_sim.network.dynamics.synthetic import GilbertElliott, LognormalFading
from nmoe_sim.network.dynamics.traces import TraceError, read_trace

MBPS = 1e6


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ------------------------------------------------------------------ steps


def test_steps_hold_each_value_until_the_next_and_wrap_with_a_period() -> None:
    s = Steps([0.0, 1.0, 3.0], [5.0, 7.0, 2.0])
    assert s.value_at(0.5) == (5.0, 1.0)
    assert s.value_at(1.0) == (7.0, 3.0)
    assert s.value_at(10.0) == (2.0, math.inf)
    wrapped = Steps([0.0, 1.0], [5.0, 7.0], period_s=4.0)
    assert wrapped.value_at(4.5) == (5.0, 5.0)
    assert wrapped.value_at(6.0) == (7.0, 8.0)
    ahead = wrapped.shifted(0.5)  # read half a second ahead
    assert ahead.value_at(0.0) == (5.0, 0.5)
    assert ahead.value_at(0.5) == (7.0, 3.5)


def test_steps_never_answer_a_change_that_is_not_later() -> None:
    s = Steps([0.0, 0.1, 0.2], [1.0, 2.0, 3.0], period_s=0.3).shifted(0.7)
    t = 0.0
    for _ in range(1000):
        _, until = s.value_at(t)
        assert until > t
        t = until
    assert t == pytest.approx(100.0 - 0.0, abs=0.2)


# ------------------------------------------------------------------ traces


def test_mahimahi_rate_follows_packets_per_interval(tmp_path: Path) -> None:
    # 100 ms with a packet every ms (12 Mbps), then 100 ms with one every 4 ms (3 Mbps).
    lines = [str(t) for t in range(1, 101)] + [str(t) for t in range(104, 201, 4)]
    trace = read_trace(write(tmp_path, "two.mahi", "\n".join(lines) + "\n"))
    assert trace.capacity_bps.period_s == pytest.approx(0.2)
    assert trace.capacity_bps.times == [0.0, 0.1]
    assert trace.capacity_bps.values == pytest.approx([12 * MBPS, 3 * MBPS])
    assert trace.capacity_bps.mean() == pytest.approx(7.5 * MBPS)


def test_mahimahi_several_packets_in_one_millisecond_and_time_zero_wrapping(
    tmp_path: Path,
) -> None:
    # Two packets at every ms, the pair at 0 ms counted at the period's end: 24 Mbps throughout.
    lines = [str(t) for t in range(0, 50) for _ in range(2)] + ["50", "50"]
    trace = read_trace(write(tmp_path, "pairs.trace", "\n".join(lines)))
    # 0..50 ms: 100 packets after time 0 plus the pair at 0 = 102? No: times 0..50 hold 51 pairs;
    # the pair at 0 belongs to the wrap-around (time 50), so 50 ms carry 102 packets.
    assert trace.capacity_bps.values == pytest.approx([102 * 1500 * 8 / 0.050])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty trace"),
        ("0\n0\n", "must be at least 1 ms"),
        ("5\n3\n", ":2: time 3 ms comes after 5 ms"),
        ("1\nx\n", ":2: 'x' is not a time in whole milliseconds"),
        ("1\n-4\n", ":2: '-4' is not a time"),
        ("1\n\n2\n", ":2: empty line"),
    ],
)
def test_bad_mahimahi_traces_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(TraceError, match=message) as err:
        read_trace(write(tmp_path, "bad.mahi", text))
    assert "bad.mahi" in str(err.value)


def test_csv_trace_steps_latency_and_loss(tmp_path: Path) -> None:
    text = "time_s,bandwidth_mbps,latency_ms,loss\n0,10,20,0\n1.5,2,40,0.01\n# end\n"
    trace = read_trace(write(tmp_path, "t.csv", text))
    assert trace.capacity_bps.value_at(1.0) == (10 * MBPS, 1.5)
    assert trace.capacity_bps.value_at(2.0) == (2 * MBPS, math.inf)
    assert trace.latency_s is not None and trace.latency_s.value_at(2.0)[0] == 0.040
    assert trace.loss is not None and trace.loss.value_at(0.0)[0] == 0.0


def test_repeating_csv_trace_is_closed_by_a_row_repeating_the_first(tmp_path: Path) -> None:
    trace = read_trace(write(tmp_path, "r.csv", "0,10\n1,2\n3,10\n"), repeat=True)
    assert trace.capacity_bps.period_s == 3.0
    assert trace.capacity_bps.value_at(4.5) == (2 * MBPS, 6.0)
    with pytest.raises(TraceError, match=r"r2.csv:3: a repeating trace's last row"):
        read_trace(write(tmp_path, "r2.csv", "0,10\n1,2\n3,5\n"), repeat=True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty trace"),
        ("time_s,bandwidth_mbps\n", "empty trace"),
        ("1,10\n", ":1: the first row is at time_s 1"),
        ("0,10\n2,5\n1,3\n", ":3: time_s 1 does not come after 2"),
        ("0,10\n1,-2\n", r":2: bandwidth_mbps -2 is outside"),
        ("0,10\n1,0\n", r":2: bandwidth_mbps 0 is outside"),
        ("0,10\n1,nan\n", ":2: NaN or infinity"),
        ("0,10,5\n1,3\n", ":2: 2 columns where line 1 has 3"),
        ("0,10,5,1.5\n", ":1: loss 1.5 is outside"),
        ("time,rate\n0,1\n", ":1: header"),
        ("0,ten\n", ":1: bandwidth_mbps 'ten' is not a number"),
    ],
)
def test_bad_csv_traces_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(TraceError, match=message):
        read_trace(write(tmp_path, "bad.csv", text))


def test_missing_or_binary_trace_files(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="not found"):
        read_trace(tmp_path / "nope.csv")
    with pytest.raises(TraceError, match="not found"):
        read_trace(tmp_path)
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(TraceError, match="not UTF-8"):
        read_trace(tmp_path / "bin.csv")


# ------------------------------------------------------------------ synthetic processes


def test_fading_has_mean_one_spread_sigma_and_its_correlation_time() -> None:
    sigma, tau, step = 0.6, 4.0, 0.5
    fading = LognormalFading(sigma, tau, step, np.random.default_rng(1))
    n = 200_000
    logs = np.log([fading.value_at(k * step)[0] for k in range(n)])
    # Effective number of independent samples: n (1 - rho) / (1 + rho) ~ 12,000 here.
    rho = math.exp(-step / tau)
    n_eff = n * (1 - rho) / (1 + rho)
    assert logs.std() == pytest.approx(sigma, rel=5 / math.sqrt(n_eff))
    assert logs.mean() == pytest.approx(-(sigma**2) / 2, abs=5 * sigma / math.sqrt(n_eff))
    lag = int(tau / step)  # one correlation time: autocorrelation exp(-1)
    x = logs - logs.mean()
    auto = float(np.dot(x[:-lag], x[lag:]) / np.dot(x, x))
    assert auto == pytest.approx(math.exp(-1), abs=0.05)
    assert fading.value_at(3.2)[1] == pytest.approx(3.5)


def test_fading_is_the_same_whatever_the_order_it_is_read_in() -> None:
    a = LognormalFading(0.5, 2.0, 1.0, np.random.default_rng(7))
    b = LognormalFading(0.5, 2.0, 1.0, np.random.default_rng(7))
    late = b.value_at(5000.0)
    assert [a.value_at(float(t))[0] for t in range(5001)][-1] == late[0]


def test_gilbert_elliott_spends_its_stationary_share_of_time_bad() -> None:
    good_s, bad_s = 2.0, 0.5
    ge = GilbertElliott(good_s, bad_s, 0.0, 0.2, np.random.default_rng(3))
    t, bad_time, end = 0.0, 0.0, 20_000.0
    while t < end:
        loss, until = ge.value_at(t)
        if loss == 0.2:
            bad_time += min(until, end) - t
        t = until
    # About 8,000 bad spells of mean 0.5 s: the share's standard error is under 0.5 %.
    assert bad_time / end == pytest.approx(bad_s / (good_s + bad_s), abs=0.02)


# ------------------------------------------------------------------ scenario targets


SCENARIO = """
name: t
clients: {count: 4}
dataset: {name: synthetic}
network:
  topology: mec
  cells: 2
  d2d_mbps: 50
"""


def scenario(tmp_path: Path, *overrides: str):
    path = write(tmp_path, "s.yaml", SCENARIO)
    return load_scenario(path, list(overrides))


def test_targets_most_specific_first(tmp_path: Path) -> None:
    up = write(tmp_path, "up.csv", "0,5\n")
    down = write(tmp_path, "down.csv", "0,30\n")
    special = write(tmp_path, "c1.csv", "0,1\n")
    sc = scenario(
        tmp_path,
        f"network.dynamics.access.uplink_trace={up}",
        f"network.dynamics.access.downlink_trace={down}",
        f"network.dynamics.links=[{{a: c1, b: bs0, trace: {special}}}]",
        "network.dynamics.backhaul.fading.sigma=0.3",
    )
    setup = build_network(sc.network, sc.clients.count, sc.seed)
    changes = setup.link_changes
    assert changes is not None
    assert changes.schedule("c0", "bs0").state_at(1.0).capacity_bps == 5 * MBPS
    assert changes.schedule("bs0", "c0").state_at(1.0).capacity_bps == 30 * MBPS
    assert changes.schedule("c1", "bs0").state_at(1.0).capacity_bps == 1 * MBPS
    assert changes.schedule("bs0", "c1").state_at(1.0).capacity_bps == 1 * MBPS
    assert changes.schedule("c0", "c1") is None  # d2d: nothing set
    backhaul = changes.schedule("bs0", "cloud")
    assert backhaul is not None and backhaul.factor is not None


def test_dynamics_errors_name_the_key(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.csv", "0,10\n1,-1\n")
    cases = {
        f"network.dynamics.access.trace={bad}": "network.dynamics.access.trace: .*bad.csv:2",
        "network.dynamics.access.trace=nothing.csv": "network.dynamics.access.trace: trace file",
        "network.dynamics.device_classes={tablet: {fading: {sigma: 0.1}}}": "no client has",
        "network.dynamics.links=[{a: c0, b: cloud, fading: {sigma: 0.1}}]": "no link 'c0' -",
    }
    for override, message in cases.items():
        sc = scenario(tmp_path, override)
        with pytest.raises(ScenarioError, match=message):
            build_network(sc.network, sc.clients.count, sc.seed)
    with pytest.raises(ScenarioError, match="have no up or down"):
        scenario(tmp_path, "network.dynamics.d2d.uplink_trace=x.csv")
    sc = load_scenario(
        write(tmp_path, "star.yaml", "clients: {count: 3}\nnetwork: {topology: star}\n"),
        ["network.dynamics.backhaul.fading.sigma=0.2"],
    )
    with pytest.raises(ScenarioError, match="has no backhaul links"):
        build_network(sc.network, sc.clients.count, sc.seed)


def test_offsets_differ_per_client_and_pair_up_and_down(tmp_path: Path) -> None:
    trace = write(tmp_path, "walk.csv", "0,1\n1,2\n2,3\n3,4\n4,1\n")
    sc = scenario(
        tmp_path,
        f"network.dynamics.access.trace={trace}",
        "network.dynamics.access.repeat=true",
    )
    changes = build_network(sc.network, sc.clients.count, sc.seed).link_changes
    assert changes is not None
    firsts = {c: changes.schedule(c, "bs0" if c < "c2" else "bs1") for c in ("c0", "c1", "c2")}
    offsets = {c: p.capacity.offset_s for c, p in firsts.items()}  # type: ignore[union-attr]
    assert len(set(offsets.values())) == 3
    back = changes.schedule("bs0", "c0")
    assert back.capacity.offset_s == offsets["c0"]  # type: ignore[union-attr]


# ------------------------------------------------------------------ the shipped traces

TRACES = Path(__file__).resolve().parents[1] / "topologies" / "traces"


def test_shipped_traces_are_what_their_generator_makes(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_traces", TRACES / "make_traces.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.make(tmp_path)
    for name in module.TRACES:
        assert (tmp_path / name).read_bytes() == (TRACES / name).read_bytes(), name


def test_shipped_traces_read_as_their_generator_says() -> None:
    up = read_trace(TRACES / "lte-walk-up.csv", repeat=True)
    down = read_trace(TRACES / "lte-walk-down.csv", repeat=True)
    assert up.length_s == down.length_s == 600.0
    # Means of a log-normal AR(1) series (sigma 0.6, 8 s correlation) over 600 s: about 37
    # independent stretches, so within 3 standard errors (0.6 / sqrt(37) ~ 10 %) of 6 and 13.
    assert up.capacity_bps.mean() / MBPS == pytest.approx(6.0, rel=0.3)
    assert down.capacity_bps.mean() / MBPS == pytest.approx(13.0, rel=0.3)
    assert up.latency_s is not None and up.latency_s.values == [0.025]
    wifi = read_trace(TRACES / "wifi-office.mahi")
    assert wifi.length_s == 30.0
    # Good 20 Mbit/s for 5/6 of the time, bad 2 for 1/6, on average: 17 Mbit/s, within noise.
    assert 8.0 < wifi.capacity_bps.mean() / MBPS < 21.0
