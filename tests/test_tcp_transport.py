"""The `tcp` transport, one mechanism at a time, against times worked out by hand."""

from __future__ import annotations

import itertools
import math
from collections.abc import Generator

import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st
from stepping import stepped_finish

from nmoe_sim.network.flows import FlowNetwork
from nmoe_sim.network.ramp import Ramp
from nmoe_sim.network.topology import Topology, load_topology
from nmoe_sim.network.transports import FluidTransport, by_name
from nmoe_sim.network.transports.tcp import TcpTransport, padhye_packets_per_s

MTU, HEADERS, FRAMING = 1500, 52, 14  # Linux's defaults
MSS = MTU - HEADERS  # 1448 payload bytes per segment
PACKET = 8 * (MTU + FRAMING)  # wire bits of a full segment
CONTROL = 8 * (HEADERS + FRAMING)  # wire bits of SYN, SYN-ACK, ACK


def wire_bits(size_bytes: int) -> int:
    return 8 * (size_bytes + math.ceil(size_bytes / MSS) * (HEADERS + FRAMING))


def link(mbps: float, ms: float, loss: float = 0.0, *hops: tuple[float, float]) -> Topology:
    """sender - receiver over one link, or through relays with `hops` (mbps, ms) after it."""
    names = ["sender", *[f"relay{i}" for i in range(len(hops))], "receiver"]
    specs = [(mbps, ms), *hops]
    return load_topology(
        {
            "nodes": [
                {"name": n, "role": "cloud" if n == "sender" else "client", "device_class": "x"}
                for n in names
            ],
            "links": [
                {"a": a, "b": b, "bandwidth_mbps": bw, "latency_ms": lat, "loss_rate": loss}
                for (a, b), (bw, lat) in zip(itertools.pairwise(names), specs, strict=True)
            ],
        }
    )


def send(
    topo: Topology, transport: object, messages: list[tuple[float, int]]
) -> list[tuple[float, float]]:
    """Send (start time, bytes) messages from sender to receiver; (start, end) of each."""
    env = simpy.Environment()
    net = FlowNetwork(topo, transport=transport)  # type: ignore[arg-type]
    out: list[tuple[float, float]] = [(0.0, 0.0)] * len(messages)

    def one(i: int, start: float, size: int) -> Generator:
        yield env.timeout(start)
        yield from net.carry(env, "sender", "receiver", size)
        out[i] = (start, env.now)

    for i, (start, size) in enumerate(messages):
        env.process(one(i, start, size))
    env.run()
    return out


def rtt_s(bps: float, latency_s: float) -> float:
    """Round trip on an idle link: propagation both ways, a data packet there, an ACK back."""
    return 2 * latency_s + PACKET / bps + CONTROL / bps


# --------------------------------------------------------------------------- mechanisms alone


def test_handshake_adds_one_round_trip() -> None:
    bps, lat, size = 100e6, 0.020, 1000
    per_message = send(link(100, 20), TcpTransport(connections="per_message"), [(0.0, size)])
    # Persistent: the first message opens the connection, the second (sent later) does not.
    persistent = send(link(100, 20), TcpTransport(), [(0.0, size), (1.0, size)])
    alone = lat + wire_bits(size) / bps
    handshake = 2 * lat + 2 * CONTROL / bps  # SYN there, SYN-ACK back
    # ... and the third ACK crosses the link just ahead of the data.
    with_handshake = handshake + lat + (wire_bits(size) + CONTROL) / bps
    assert per_message[0][1] == pytest.approx(with_handshake, rel=1e-12)
    assert persistent[0][1] == pytest.approx(with_handshake, rel=1e-12)
    assert persistent[1][1] - persistent[1][0] == pytest.approx(alone, rel=1e-12)


def test_message_within_the_initial_window_takes_latency_and_serialization() -> None:
    # 10 KB = 7 segments, within the initial 10, on a path whose round trip is 100 ms: one burst.
    bps, lat, size = 100e6, 0.050, 10_000
    times = send(link(100, 50), TcpTransport(), [(0.0, 1), (1.0, size)])
    start, end = times[1]
    assert end - start == pytest.approx(lat + wire_bits(size) / bps, rel=1e-12)


def test_slow_start_doubles_the_window_every_round_trip() -> None:
    # 100 Mbps, 50 ms: the path holds 832 packets, far more than the windows below. Windows of
    # 10, 20, 40, 80 packets send 150 in rounds 0-3; 145 segments end in round 3's burst.
    bps, lat = 100e6, 0.050
    size = 145 * MSS
    ((_, end),) = send(link(100, 50), TcpTransport(connections="per_message"), [(0.0, size)])
    handshake = 2 * lat + 2 * CONTROL / bps
    last_burst = wire_bits(size) + CONTROL - 70 * PACKET  # past rounds 0-2's 10 + 20 + 40
    expected = handshake + lat + 3 * rtt_s(bps, lat) + last_burst / bps
    assert end == pytest.approx(expected, rel=1e-12)


def test_window_bound_flow_runs_at_window_over_round_trip() -> None:
    # A 64 KiB window on a 100 Mbps, 50 ms path (1.25 MB in flight would fill it): two long
    # transfers differ only in how long they run at the bound, W / RTT.
    bps, lat, window = 100e6, 0.050, 65536
    transport = {"connections": "per_message", "max_window_bytes": window}
    small, big = 2_000_000, 6_000_000
    ((_, t_small),) = send(link(100, 50), TcpTransport(**transport), [(0.0, small)])
    ((_, t_big),) = send(link(100, 50), TcpTransport(**transport), [(0.0, big)])
    bound_bps = window / MSS * PACKET / rtt_s(bps, lat)
    assert t_big - t_small == pytest.approx(
        (wire_bits(big) - wire_bits(small)) / bound_bps, rel=1e-9
    )
    assert bound_bps < bps / 10


def test_idle_persistent_connection_restarts_slow_start() -> None:
    bps, lat = 100e6, 0.050
    size = 145 * MSS  # four rounds from the initial window (see the slow start test)
    rtt = rtt_s(bps, lat)
    rto = rtt + 0.200  # Linux: smoothed RTT plus a variance term floored at 200 ms
    first = send(link(100, 50), TcpTransport(), [(0.0, size)])[0][1]
    # Just after the first: its window (now 80 + 75 packets) holds the whole message.
    soon = send(link(100, 50), TcpTransport(), [(0.0, size), (first + 1e-6, size)])[1]
    assert soon[1] - soon[0] == pytest.approx(lat + wire_bits(size) / bps, rel=1e-12)
    # After ten RTOs idle the window is back to 10 packets: slow start again, no handshake.
    idle = first + 10 * rto
    late = send(link(100, 50), TcpTransport(), [(0.0, size), (idle, size)])[1]
    last_burst = wire_bits(size) - 70 * PACKET
    assert late[1] - late[0] == pytest.approx(lat + 3 * rtt + last_burst / bps, rel=1e-12)


def test_idle_shorter_than_an_rto_keeps_the_window() -> None:
    bps = 100e6
    size = 145 * MSS
    first = send(link(100, 50), TcpTransport(), [(0.0, size)])[0][1]
    rto = rtt_s(bps, 0.050) + 0.200
    kept = send(link(100, 50), TcpTransport(), [(0.0, size), (first + 0.9 * rto, size)])[1]
    assert kept[1] - kept[0] == pytest.approx(0.050 + wire_bits(size) / bps, rel=1e-12)


def test_padhye_formula_by_hand() -> None:
    # p = 1 %, RTT = 20 ms, T0 = 220 ms, b = 1:
    #   RTT sqrt(2p/3)                       = 0.02 * 0.0816497 = 0.00163299
    #   T0 min(1, 3 sqrt(3p/8)) p (1 + 32p^2) = 0.22 * 0.1837117 * 0.01 * 1.0032 = 0.00040546
    #   B = 1 / 0.00203845                   = 490.57 packets/s
    assert padhye_packets_per_s(0.01, 0.020, 0.220) == pytest.approx(490.57, rel=1e-4)
    assert padhye_packets_per_s(0.0, 0.020, 0.220) == math.inf
    # Rare losses: the timeout term vanishes and it tends to Mathis' sqrt(3/2) / (RTT sqrt(p)).
    p = 1e-8
    mathis = math.sqrt(1.5) / (0.020 * math.sqrt(p))
    assert padhye_packets_per_s(p, 0.020, 0.220) == pytest.approx(mathis, rel=1e-3)


def test_loss_holds_a_long_flow_to_the_padhye_rate() -> None:
    bps, lat, loss = 100e6, 0.010, 0.01
    small, big = 2_000_000, 10_000_000
    transport = {"connections": "per_message"}
    ((_, t_small),) = send(link(100, 10, loss), TcpTransport(**transport), [(0.0, small)])
    ((_, t_big),) = send(link(100, 10, loss), TcpTransport(**transport), [(0.0, big)])
    rtt = rtt_s(bps, lat)
    cap_bps = padhye_packets_per_s(loss, rtt, rtt + 0.200) * (1 - loss) * PACKET
    assert t_big - t_small == pytest.approx((wire_bits(big) - wire_bits(small)) / cap_bps, rel=1e-9)
    # About 5.7 Mbps of the 100: a 10 MB transfer takes about 14 s instead of 0.8 s.
    assert cap_bps / (1 - loss) / PACKET * MSS * 8 == pytest.approx(5.68e6, rel=0.01)
    assert t_big == pytest.approx(14.1, rel=0.02)


def test_loss_multiplies_along_a_path() -> None:
    one = TcpTransport().path
    from nmoe_sim.network.transports.base import Hop, Route

    hop = Hop(100e6, 0.005, 0.01)
    two_hops = one(Route((hop, hop), 0.010), lambda: Route((hop, hop), 0.010))
    clean = Hop(100e6, 0.005, 0.0)
    lossy = Hop(100e6, 0.005, 1 - 0.99**2)
    same = one(Route((clean, lossy), 0.010), lambda: Route((hop, hop), 0.010))
    assert two_hops.cap_bps == pytest.approx(same.cap_bps, rel=1e-12)


def test_store_and_forward_on_a_two_hop_path() -> None:
    # One segment through a 10 Mbps access link then a 100 Mbps backhaul: each hop serializes
    # it in turn (the flow's own time counts the slow hop; the fast one adds its packet time).
    size = 1000
    topo = link(10, 5, 0.0, (100, 10))
    times = send(topo, TcpTransport(), [(0.0, 1), (1.0, size)])
    start, end = times[1]
    bits = wire_bits(size)
    assert end - start == pytest.approx(0.015 + bits / 10e6 + bits / 100e6, rel=1e-12)


def test_equal_flows_share_the_link_and_finish_together() -> None:
    # Ten flows on a 10 Mbps, 1 ms link: the window of 10 packets outlasts a round trip (the
    # path holds 3 packets), so the link carries all their wire bits back to back.
    bps, lat, size, n = 10e6, 0.001, 300_000, 10
    ends = send(link(10, 1), TcpTransport(connections="per_message"), [(0.0, size)] * n)
    handshake = 2 * lat + 2 * CONTROL / bps
    expected = handshake + lat + n * (wire_bits(size) + CONTROL) / bps
    assert [e for _, e in ends] == [pytest.approx(expected, rel=1e-12)] * n


# --------------------------------------------------------------------------- properties


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(1, 5_000_000),
    mbps=st.floats(0.5, 1000.0),
    ms=st.floats(0.0, 100.0),
    per_message=st.booleans(),
)
def test_tcp_is_never_faster_than_fluid(
    size: int, mbps: float, ms: float, per_message: bool
) -> None:
    topo = link(mbps, ms)
    tcp = TcpTransport(connections="per_message" if per_message else "persistent")
    ((_, t_tcp),) = send(topo, tcp, [(0.0, size)])
    ((_, t_fluid),) = send(topo, FluidTransport(), [(0.0, size)])
    assert t_tcp >= t_fluid * (1 - 1e-12)


@settings(max_examples=200, deadline=None)
@given(
    w0_packets=st.integers(1, 20),
    size_packets=st.floats(1.0, 3000.0),
    rtt_ms=st.floats(1.0, 200.0),
    rates_mbps=st.lists(st.floats(0.5, 200.0), min_size=1, max_size=4),
    gaps_ms=st.lists(st.floats(0.1, 300.0), min_size=3, max_size=3),
)
def test_closed_form_matches_stepping_the_rounds(
    w0_packets: int,
    size_packets: float,
    rtt_ms: float,
    rates_mbps: list[float],
    gaps_ms: list[float],
) -> None:
    """Ramp.advance / Ramp.plan, re-planned at every rate change as the flow network does, end
    the flow exactly when stepping its bursts and pauses does."""
    rtt, w0, wmax, size = rtt_ms / 1e3, w0_packets * PACKET, 400 * PACKET, size_packets * PACKET
    schedule, t = [], 0.0
    for i, r in enumerate(rates_mbps):
        schedule.append((t, r * 1e6))
        t += gaps_ms[i % len(gaps_ms)] / 1e3
    expected = stepped_finish(0.0, w0, size, schedule, lambda t: rtt, wmax)

    ramp = Ramp(0.0, rtt, w0, wmax, size)
    v, finish_v, now = 0.0, 0.0, 0.0  # a class's virtual clock and the flow's point on it
    for i, (start, r) in enumerate(schedule):
        if i:
            v += schedule[i - 1][1] * (start - now)
            if v >= finish_v:
                break
            ramp.advance(start, schedule[i - 1][1])
            now = start
        left = ramp.left if not ramp.exited else finish_v - v
        finish_v = v + left + r * ramp.plan(r)
    else:
        i = len(schedule)
    r_last = schedule[i - 1][1]
    end = now + (finish_v - v) / r_last if v < finish_v or i == len(schedule) else None
    if end is None:  # ended before the next change: back off to the stretch it ended in
        prev_start, prev_r = schedule[i - 1]
        v_prev = v - prev_r * (schedule[i][0] - prev_start)
        end = prev_start + (finish_v - v_prev) / prev_r
    assert end == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_by_name_builds_each_transport_and_refuses_others() -> None:
    assert isinstance(by_name("fluid"), FluidTransport)
    assert isinstance(by_name("tcp", connections="per_message"), TcpTransport)
    with pytest.raises(ValueError, match="unknown transport 'quic'"):
        by_name("quic")
