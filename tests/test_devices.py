"""Device model: compute durations, contention, stragglers and dropouts against hand values."""

from __future__ import annotations

import numpy as np
import pytest
import simpy

from nmoe_sim.network.devices import SERVER, DeviceProfile, Devices, TaskDropped, client_node


class _Now:
    def __init__(self, value: object) -> None:
        self.value = value

    def result(self) -> object:
        return self.value


def _profile(n: int, **kw: float) -> DeviceProfile:
    return DeviceProfile.build(
        n, client_gflops=[10.0] * n, server_gflops=100.0, rng=np.random.default_rng(0), **kw
    )


def test_duration_is_flops_over_speed() -> None:
    devices = Devices(simpy.Environment(), _profile(2), np.random.default_rng(0))
    assert devices.duration_s(client_node(1), 5e9) == pytest.approx(0.5)
    assert devices.duration_s(SERVER, 5e9) == pytest.approx(0.05)


def test_a_busy_device_makes_the_next_task_wait() -> None:
    env = simpy.Environment()
    devices = Devices(env, _profile(1), np.random.default_rng(0))
    ends = []

    def task() -> object:
        value = yield from devices.work(client_node(0), 1e10, lambda: _Now("done"))
        ends.append(env.now)
        return value

    procs = [env.process(task()) for _ in range(3)]
    env.run()
    assert ends == pytest.approx([1.0, 2.0, 3.0])  # one second each, one after the other
    assert [p.value for p in procs] == ["done"] * 3


def test_straggler_fraction_and_slowdown_are_exact() -> None:
    profile = _profile(10, straggler_fraction=0.3, straggler_slowdown=4.0)
    speeds = sorted(profile.speed_flops[client_node(c)] for c in range(10))
    assert speeds == pytest.approx([2.5e9] * 3 + [1e10] * 7)
    assert profile.speed_flops[SERVER] == 1e11


def test_stragglers_are_seeded() -> None:
    a = DeviceProfile.build(
        50,
        client_gflops=[1.0] * 50,
        server_gflops=1.0,
        straggler_fraction=0.2,
        straggler_slowdown=3.0,
        lognormal_sigma=0.5,
        rng=np.random.default_rng(7),
    )
    b = DeviceProfile.build(
        50,
        client_gflops=[1.0] * 50,
        server_gflops=1.0,
        straggler_fraction=0.2,
        straggler_slowdown=3.0,
        lognormal_sigma=0.5,
        rng=np.random.default_rng(7),
    )
    assert a == b


def test_lognormal_spread_has_the_requested_sigma() -> None:
    n, sigma = 20_000, 0.5
    profile = DeviceProfile.build(
        n,
        client_gflops=[1.0] * n,
        server_gflops=1.0,
        lognormal_sigma=sigma,
        rng=np.random.default_rng(1),
    )
    log_factor = -np.log([profile.speed_flops[client_node(c)] / 1e9 for c in range(n)])
    # Mean 0 within 5 standard errors (sigma / sqrt(n)); std within 3 %.
    assert abs(log_factor.mean()) < 5 * sigma / np.sqrt(n)
    assert log_factor.std() == pytest.approx(sigma, rel=0.03)


def test_dropout_is_drawn_when_the_task_ends() -> None:
    env = simpy.Environment()
    p, tasks = 0.3, 2000
    profile = DeviceProfile(_profile(1).speed_flops, dropout=p)
    devices = Devices(env, profile, np.random.default_rng(3))
    outcomes: list[tuple[float, bool]] = []

    def task() -> object:
        try:
            yield from devices.work(client_node(0), 1e9, lambda: _Now(1), may_drop=True)
            outcomes.append((env.now, False))
        except TaskDropped:
            outcomes.append((env.now, True))

    for _ in range(tasks):
        env.process(task())
    env.run()
    lost = np.mean([d for _, d in outcomes])
    assert abs(lost - p) < 4 * np.sqrt(p * (1 - p) / tasks)
    # A lost task still took its full time on the device.
    assert [t for t, _ in outcomes] == pytest.approx([0.1 * (i + 1) for i in range(tasks)])


def test_server_tasks_never_drop() -> None:
    env = simpy.Environment()
    devices = Devices(env, DeviceProfile({SERVER: 1e9}, dropout=0.99), np.random.default_rng(0))
    proc = env.process(devices.work(SERVER, 1e9, lambda: _Now("ok"), may_drop=True))
    env.run()
    assert proc.value == "ok"


def test_tasks_not_marked_droppable_never_drop() -> None:
    env = simpy.Environment()
    profile = DeviceProfile(_profile(1).speed_flops, dropout=0.99)
    devices = Devices(env, profile, np.random.default_rng(0))
    procs = [env.process(devices.work(client_node(0), 1e9, lambda: _Now(1))) for _ in range(20)]
    env.run()
    assert [p.value for p in procs] == [1] * 20


def test_availability_window_by_hand() -> None:
    # Online while (t - 1) mod 10 < 4: [1, 5), [11, 15), ...
    profile = DeviceProfile({client_node(0): 1e9}, availability={client_node(0): (1.0, 10.0, 0.4)})
    assert [profile.online(client_node(0), t) for t in (0.5, 1.0, 4.9, 5.0, 10.9, 11.0)] == [
        False,
        True,
        True,
        False,
        False,
        True,
    ]
    assert profile.online(SERVER, 5.0)  # not listed: always online


def test_task_ending_offline_is_lost_as_offline() -> None:
    env = simpy.Environment()
    profile = DeviceProfile({client_node(0): 1e9}, availability={client_node(0): (0.0, 10.0, 0.5)})
    devices = Devices(env, profile, np.random.default_rng(0))
    outcomes: list[str] = []

    def task(flops: float) -> object:
        try:
            yield from devices.work(client_node(0), flops, lambda: _Now(1), may_drop=True)
            outcomes.append("ok")
        except TaskDropped as lost:
            outcomes.append(lost.reason)

    env.process(task(3e9))  # ends at 3 s: online
    env.process(task(3e9))  # queued behind it, ends at 6 s: offline
    env.run()
    assert outcomes == ["ok", "offline"]


def test_availability_phases_are_seeded_per_client() -> None:
    def build() -> DeviceProfile:
        return DeviceProfile.build(
            5,
            client_gflops=[1.0] * 5,
            server_gflops=1.0,
            availability_period_s=60.0,
            online_fraction=0.5,
            rng=np.random.default_rng(4),
        )

    a, b = build(), build()
    assert a.availability == b.availability
    phases = [a.availability[client_node(c)][0] for c in range(5)]
    assert all(0 <= p < 60 for p in phases) and len(set(phases)) == 5


def test_the_clock_stays_a_python_float_after_straggling_client_work() -> None:
    """Speeds drawn with numpy (stragglers, lognormal factors) are kept as Python floats: a numpy
    duration would turn the clock's `now`, and all network arithmetic after it, into numpy
    scalars (the same values, several times slower per operation)."""
    profile = _profile(4, straggler_fraction=0.5, straggler_slowdown=3.0, lognormal_sigma=0.5)
    env = simpy.Environment()
    devices = Devices(env, profile, np.random.default_rng(0))

    def task() -> object:
        return (yield from devices.work(client_node(2), 1e10, lambda: _Now("done")))

    env.run(env.process(task()))
    assert type(env.now) is float and env.now == 1e10 / profile.speed_flops[client_node(2)]
    assert all(type(speed) is float for speed in profile.speed_flops.values())
