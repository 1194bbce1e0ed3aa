"""Federation drivers (sync rounds, FedAsync, FedBuff) on a tiny world with hand-computable times.

Every client device runs at 1 FLOP/s, so a task of `t` FLOPs takes exactly `t` seconds; every
transfer takes a fixed delay. A client's task returns the weights it received plus its own
delta, so every aggregate can be written down by hand.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import simpy
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st

from nmoe_sim.federation.aggregate import Weights
from nmoe_sim.federation.asynchronous import fedasync, fedbuff, mix
from nmoe_sim.federation.rules import WeightedMean
from nmoe_sim.federation.server_optimizers import FedAdam, FedAvg
from nmoe_sim.federation.staleness import by_name, constant, hinge, polynomial
from nmoe_sim.federation.sync import SyncSettings, sync_rounds
from nmoe_sim.learning.client import Update
from nmoe_sim.network.devices import SERVER, DeviceProfile, client_node
from nmoe_sim.runtime.backend import InProcessBackend
from nmoe_sim.telemetry.records import MethodLog, Recorder
from nmoe_sim.telemetry.schema import UpdateRecord
from nmoe_sim.world import World

REASONS = {"late", "over_selected", "stale", "dropout", "offline"}


class FixedDelay:
    """Every transfer takes `delay_s`, whatever its size and however many run at once."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    def carry(
        self, env: simpy.Environment, src: str, dst: str, size_bytes: int
    ) -> Generator[Any, Any, tuple[str, ...]]:
        yield env.timeout(self.delay_s)
        return (src, dst)


def local_step(state: int, weights: Weights, delta: float, samples: int) -> Update:
    """The client's answer: received weights plus its delta; its integer counter moves too, so
    tests can check that the server keeps its own."""
    return Update({"w": weights["w"] + delta, "n": weights["n"] + 1}, samples, float(state))


@dataclass
class Fake:
    """A world of clients with known compute times, deltas and sample counts."""

    compute_s: list[float]
    delta: list[float]
    samples: list[int]
    delay_s: float = 1.0
    dropout: float = 0.0
    seed: int = 0
    log: MethodLog = field(init=False)
    world: World = field(init=False)
    plan_calls: list[tuple[int, float]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        ids = self.client_ids
        recorder = Recorder()
        self.log = recorder.method("fake")
        speeds = {client_node(c): 1.0 for c in ids} | {SERVER: 1.0}
        backend = InProcessBackend(ids)
        backend.host(lambda cid: cid)  # type: ignore[arg-type, return-value]
        self.world = World.create(
            start_s=0.0,
            network=FixedDelay(self.delay_s),
            devices=DeviceProfile(speeds, self.dropout),
            backend=backend,
            log=self.log,
            recorder=recorder,
            seed=self.seed,
        )

    @property
    def client_ids(self) -> list[int]:
        return list(range(len(self.compute_s)))

    def plan(self, cid: int, weights: Weights | None, r: int) -> tuple:
        self.plan_calls.append((cid, self.world.env.now))
        return self.compute_s[cid], local_step, (weights, self.delta[cid], self.samples[cid])

    def run(self, driver: Generator) -> Weights:
        return self.world.run(driver)

    def rows(self, kind: str) -> list[tuple]:
        return [
            (r.t_start_s, r.t_end_s, r.src, r.dst, r.round)
            for r in self.log.transfers
            if r.kind == kind
        ]


def initial() -> Weights:
    return {"w": torch.zeros(2, dtype=torch.float64), "n": torch.tensor(7)}


def w_of(weights: Weights, n: int | None = 7) -> float:
    """The (uniform) float weight; checks the integer counter is `n` where given: the async
    servers keep their own integer buffers (FedAvg keeps the first upload's, not checked)."""
    assert torch.equal(weights["w"], torch.full((2,), weights["w"][0].item(), dtype=torch.float64))
    if n is not None:
        assert weights["n"].item() == n
    return weights["w"][0].item()


class Rounds:
    """Collects the on_round calls: (step, w, clients' losses = client ids, time)."""

    def __init__(self, fake: Fake, n: int | None = 7) -> None:
        self.fake = fake
        self.n = n
        self.calls: list[tuple[int, float, list[int], float]] = []

    def __call__(self, r: int, weights: Weights, updates: list[Update]) -> None:
        self.calls.append(
            (r, w_of(weights, self.n), [int(u.loss) for u in updates], self.fake.world.env.now)
        )


def rec(
    cid: int, r: int, t0: float, t1: float | None, s: int | None, reason: str = ""
) -> UpdateRecord:
    status = "dropped" if reason else "applied"
    return UpdateRecord(cid, "st", r, t0, t1, s, status, reason)  # type: ignore[arg-type]


# -- staleness functions -----------------------------------------------------------------------


def test_staleness_functions_against_hand_values() -> None:
    assert [constant()(s) for s in (0, 1, 9)] == [1.0, 1.0, 1.0]
    poly = polynomial(0.5)
    assert poly(0) == 1.0
    assert poly(3) == pytest.approx(0.5)  # 4^-0.5
    assert polynomial(1.0)(1) == 0.5
    h = hinge(10.0, 4.0)
    assert [h(s) for s in (0, 4)] == [1.0, 1.0]
    assert h(5) == pytest.approx(1 / 11)
    assert h(6) == pytest.approx(1 / 21)
    assert by_name("hinge", a=10.0, b=4.0)(5) == h(5)
    assert by_name("polynomial", a=1.0)(3) == 0.25
    assert by_name("constant")(7) == 1.0
    with pytest.raises(ValueError, match="unknown staleness"):
        by_name("exponential")
    with pytest.raises(ValueError, match="bad parameters"):
        by_name("polynomial", b=1.0)
    with pytest.raises(ValueError, match="a >= 0"):
        polynomial(-1.0)
    with pytest.raises(ValueError, match="negative"):
        constant()(-1)


def test_mix_is_exact_on_floats_and_keeps_integer_buffers() -> None:
    server = {"w": torch.tensor([0.0, 4.0]), "n": torch.tensor(3)}
    client = {"w": torch.tensor([2.0, 0.0]), "n": torch.tensor(9)}
    out = mix(server, client, 0.25)
    assert torch.equal(out["w"], torch.tensor([0.5, 3.0]))
    assert out["w"].dtype == torch.float32
    assert out["n"].item() == 3


# -- synchronous rounds ------------------------------------------------------------------------


def test_sync_default_round_lasts_as_long_as_the_slowest_client() -> None:
    fake = Fake(compute_s=[2.0, 3.0, 5.0], delta=[1.0, 2.0, 3.0], samples=[1, 1, 2])
    rounds = Rounds(fake, n=None)
    final = fake.run(
        sync_rounds(
            fake.world,
            stage="st",
            rounds=2,
            client_ids=fake.client_ids,
            initial=initial(),
            plan=fake.plan,
            on_round=rounds,
        )
    )
    # Round time = download 1 + slowest compute 5 + upload 1; weighted mean (1+2+6)/4 = 2.25.
    assert rounds.calls == [(0, 2.25, [0, 1, 2], 7.0), (1, 4.5, [0, 1, 2], 14.0)]
    assert w_of(final, n=None) == 4.5
    assert fake.world.env.now == 15.0  # the final broadcast takes one more delay
    downs = [(0.0, 1.0, SERVER, f"c{c}", 0) for c in range(3)]
    downs += [(7.0, 8.0, SERVER, f"c{c}", 1) for c in range(3)]
    downs += [(14.0, 15.0, SERVER, f"c{c}", 2) for c in range(3)]
    assert fake.rows("model_down") == downs
    ups = sorted(fake.rows("update_up"))
    assert ups == sorted(
        [(1.0 + t, 2.0 + t, f"c{c}", SERVER, 0) for c, t in enumerate([2.0, 3.0, 5.0])]
        + [(8.0 + t, 9.0 + t, f"c{c}", SERVER, 1) for c, t in enumerate([2.0, 3.0, 5.0])]
    )
    assert fake.log.updates == [
        rec(0, 0, 0.0, 4.0, 0),
        rec(1, 0, 0.0, 5.0, 0),
        rec(2, 0, 0.0, 7.0, 0),
        rec(0, 1, 7.0, 11.0, 0),
        rec(1, 1, 7.0, 12.0, 0),
        rec(2, 1, 7.0, 14.0, 0),
    ]
    assert [(r.t_start_s, r.t_end_s, r.applied, r.closed_by) for r in fake.log.rounds] == [
        (0.0, 7.0, 3, "all"),
        (7.0, 14.0, 3, "all"),
    ]


def test_sync_selects_k_clients_with_the_rng() -> None:
    def run(seed: int) -> Fake:
        fake = Fake(compute_s=[1.0] * 5, delta=[1.0] * 5, samples=[1] * 5)
        fake.run(
            sync_rounds(
                fake.world,
                stage="st",
                rounds=4,
                client_ids=fake.client_ids,
                initial=initial(),
                plan=fake.plan,
                on_round=Rounds(fake, n=None),
                settings=SyncSettings(clients_per_round=2),
                rng=np.random.default_rng(seed),
            )
        )
        return fake

    a, b = run(1), run(1)
    assert a.log.updates == b.log.updates
    per_round = Counter(u.round for u in a.log.updates)
    assert per_round == {0: 2, 1: 2, 2: 2, 3: 2}
    assert all(u.status == "applied" for u in a.log.updates)
    picks = [sorted(u.client for u in a.log.updates if u.round == r) for r in range(4)]
    assert len({tuple(p) for p in picks}) > 1  # the draw changes from round to round
    # Only the selected clients download during rounds; everyone gets the final model.
    assert len(a.rows("model_down")) == 4 * 2 + 5
    fake = Fake(compute_s=[1.0] * 3, delta=[1.0] * 3, samples=[1] * 3)
    with pytest.raises(ValueError, match="needs an rng"):
        fake.run(
            sync_rounds(
                fake.world,
                stage="st",
                rounds=1,
                client_ids=fake.client_ids,
                initial=initial(),
                plan=fake.plan,
                on_round=Rounds(fake, n=None),
                settings=SyncSettings(clients_per_round=2),
            )
        )


def test_over_selection_keeps_the_first_k_uploads() -> None:
    fake = Fake(compute_s=[1.0, 2.0, 4.0], delta=[1.0, 2.0, 4.0], samples=[1, 3, 1])
    rounds = Rounds(fake, n=None)
    final = fake.run(
        sync_rounds(
            fake.world,
            stage="st",
            rounds=2,
            client_ids=fake.client_ids,
            initial=initial(),
            plan=fake.plan,
            on_round=rounds,
            settings=SyncSettings(clients_per_round=2, over_selection=0.5),  # ceil(2 * 1.5) = 3
            rng=np.random.default_rng(0),
        )
    )
    # Round 0 closes at the second arrival (t = 4) with (1*1 + 3*2)/4 = 1.75. Round 1: client 2
    # is still computing round 0 until t = 5, so its round-1 work runs 5..9.
    assert rounds.calls == [(0, 1.75, [0, 1], 4.0), (1, 3.5, [0, 1], 8.0)]
    assert w_of(final, n=None) == 3.5
    assert fake.world.env.now == 9.0
    assert fake.log.updates == [
        rec(0, 0, 0.0, 3.0, 0),
        rec(1, 0, 0.0, 4.0, 0),
        rec(2, 0, 0.0, 6.0, 1, "over_selected"),  # sent, landed after its round closed
        rec(0, 1, 4.0, 7.0, 0),
        rec(1, 1, 4.0, 8.0, 0),
        rec(2, 1, 4.0, None, None, "over_selected"),  # still in flight when the driver ended
    ]
    assert [(r.selected, r.applied, r.closed_by) for r in fake.log.rounds] == [
        (3, 2, "quorum"),
        (3, 2, "quorum"),
    ]
    # The dropped upload was still carried and traced, with its staleness.
    late = [r for r in fake.log.transfers if r.kind == "update_up" and r.src == "c2"]
    assert [(r.t_end_s, r.round, r.staleness) for r in late] == [(6.0, 0, 1)]


def test_deadline_drops_late_uploads_and_bounds_the_round() -> None:
    fake = Fake(compute_s=[1.0, 3.0, 6.0], delta=[1.0, 2.0, 4.0], samples=[1, 1, 1])
    rounds = Rounds(fake, n=None)
    final = fake.run(
        sync_rounds(
            fake.world,
            stage="st",
            rounds=2,
            client_ids=fake.client_ids,
            initial=initial(),
            plan=fake.plan,
            on_round=rounds,
            settings=SyncSettings(deadline_s=5.0),
        )
    )
    # Client 1 lands exactly at the deadline (1 + 3 + 1 = 5): in time. Client 2 (8) is late.
    assert rounds.calls == [(0, 1.5, [0, 1], 5.0), (1, 3.0, [0, 1], 10.0)]
    assert w_of(final, n=None) == 3.0
    assert [(r.t_end_s - r.t_start_s, r.closed_by) for r in fake.log.rounds] == [
        (5.0, "deadline"),
        (5.0, "deadline"),
    ]
    assert fake.log.updates == [
        rec(0, 0, 0.0, 3.0, 0),
        rec(1, 0, 0.0, 5.0, 0),
        # Both land at t = 8; client 2's upload started first (its compute timer was set at
        # t = 1, client 0's at t = 6), so SimPy's event order hands it over first.
        rec(2, 0, 0.0, 8.0, 1, "late"),
        rec(0, 1, 5.0, 8.0, 0),
        rec(1, 1, 5.0, 10.0, 0),
        rec(2, 1, 5.0, None, None, "late"),
    ]


def test_a_round_with_no_upload_in_time_leaves_the_model_unchanged() -> None:
    fake = Fake(compute_s=[1.0, 2.0], delta=[1.0, 2.0], samples=[1, 1])
    rounds = Rounds(fake, n=None)
    final = fake.run(
        sync_rounds(
            fake.world,
            stage="st",
            rounds=1,
            client_ids=fake.client_ids,
            initial=initial(),
            plan=fake.plan,
            on_round=rounds,
            settings=SyncSettings(deadline_s=1.0),
        )
    )
    assert rounds.calls == [(0, 0.0, [], 1.0)]
    assert w_of(final, n=None) == 0.0
    assert [(r.applied, r.closed_by) for r in fake.log.rounds] == [(0, "deadline")]
    assert [(u.client, u.status, u.reason) for u in fake.log.updates] == [
        (0, "dropped", "late"),
        (1, "dropped", "late"),
    ]


def test_sync_settings_are_validated() -> None:
    assert SyncSettings(clients_per_round=10, over_selection=0.1).selected(20) == 11
    assert SyncSettings(clients_per_round=3, over_selection=1.0).selected(4) == 4
    with pytest.raises(ValueError, match="exceeds"):
        SyncSettings(clients_per_round=5).quorum(4)
    with pytest.raises(ValueError):
        SyncSettings(deadline_s=0.0)
    with pytest.raises(ValueError):
        SyncSettings(clients_per_round=0)


# -- FedAsync and FedBuff ----------------------------------------------------------------------


def _two_clients() -> Fake:
    # Client 0: 1 s of work, delta 1, 1 sample; client 1: 3 s, delta 10, 3 samples.
    return Fake(compute_s=[1.0, 3.0], delta=[1.0, 10.0], samples=[1, 3])


def _fedasync(fake: Fake, total: int, **kw: Any) -> Weights:
    return fake.run(
        fedasync(
            fake.world,
            stage="st",
            total_updates=total,
            client_ids=fake.client_ids,
            initial=initial(),
            plan=fake.plan,
            on_round=kw.pop("on_round", Rounds(fake)),
            rng=np.random.default_rng(0),
            concurrency=kw.pop("concurrency", 2),
            mixing=kw.pop("mixing", 0.5),
            **kw,
        )
    )


def _fedbuff(fake: Fake, total: int, **kw: Any) -> Weights:
    return fake.run(
        fedbuff(
            fake.world,
            stage="st",
            total_updates=total,
            client_ids=fake.client_ids,
            initial=initial(),
            plan=fake.plan,
            on_round=kw.pop("on_round", Rounds(fake)),
            rng=np.random.default_rng(0),
            concurrency=kw.pop("concurrency", 2),
            buffer_size=kw.pop("buffer_size", 2),
            **kw,
        )
    )


def test_fedasync_constant_staleness_by_hand() -> None:
    fake = _two_clients()
    final = _fedasync(fake, 3)
    # t=3: client 0 (from v0) lands, s=0: w = 0.5*0 + 0.5*1 = 0.5 (v1); client 0 restarts from
    # v1. t=5: client 1 (from v0), s=1: w = 0.5*0.5 + 0.5*10 = 5.25 (v2). t=6: client 0 (from
    # v1, returns 0.5+1), s=1: w = 0.5*5.25 + 0.5*1.5 = 3.375 (v3).
    assert w_of(final) == 3.375
    assert fake.log.updates == [
        rec(0, 0, 0.0, 3.0, 0),
        rec(1, 0, 0.0, 5.0, 1),
        rec(0, 1, 3.0, 6.0, 1),
    ]
    assert fake.world.env.now == 7.0  # final broadcast
    assert [r.round for r in fake.log.transfers if r.kind == "model_down"][-2:] == [3, 3]
    ups = sorted(
        (r.t_end_s, r.src, r.round, r.staleness)
        for r in fake.log.transfers
        if r.kind == "update_up"
    )
    assert ups == [(3.0, "c0", 0, 0), (5.0, "c1", 0, 1), (6.0, "c0", 1, 1)]


def test_fedasync_polynomial_staleness_weight() -> None:
    fake = _two_clients()
    final = _fedasync(fake, 3, staleness_fn=polynomial(1.0))
    # a_s = 0.5 / (1 + s): s=0 -> 0.5: w = 0.5; s=1 -> 0.25: w = 0.75*0.5 + 0.25*10 = 2.875;
    # s=1 -> 0.25: w = 0.75*2.875 + 0.25*1.5 = 2.53125.
    assert w_of(final) == 2.53125


def test_fedasync_drops_updates_staler_than_the_bound() -> None:
    fake = _two_clients()
    final = _fedasync(fake, 3, max_staleness=0)
    # Client 1's update (s=1) is dropped; client 0's second one then starts and lands at v1.
    assert w_of(final) == 1.0  # 0.5*0.5 + 0.5*1.5
    assert fake.log.updates == [
        rec(0, 0, 0.0, 3.0, 0),
        rec(1, 0, 0.0, 5.0, 1, "stale"),
        rec(0, 1, 3.0, 6.0, 0),
    ]


def test_fedbuff_buffer_of_two_by_hand() -> None:
    fake = _two_clients()
    final = _fedbuff(fake, 4)
    # t=3 client 0 delta 1 (v0). t=5 client 1 delta 10: step (1*1 + 3*10)/4 = 7.75 -> v1;
    # client 1 restarts from v1. t=6 client 0's second update started from v0 (w=0): delta 1
    # against v0, not against v1, s=1. t=10 client 1 (from v1, 7.75+10): delta 10, s=0:
    # step 7.75 + 31/4 = 15.5 -> v2.
    assert w_of(final) == 15.5
    assert fake.log.updates == [
        rec(0, 0, 0.0, 3.0, 0),
        rec(1, 0, 0.0, 5.0, 0),
        rec(0, 0, 3.0, 6.0, 1),
        rec(1, 1, 5.0, 10.0, 0),
    ]
    assert fake.world.env.now == 11.0
    assert fake.log.transfers[-1].round == 2  # the final broadcast carries version 2


def test_fedbuff_applies_a_partly_filled_buffer_at_the_end() -> None:
    fake = _two_clients()
    final = _fedbuff(fake, 4, max_staleness=0)
    # As above, but client 0's second update (s=1) is dropped; client 1's last delta (10) is
    # alone in the buffer when the run ends and is applied: 7.75 + 10 = 17.75.
    assert w_of(final) == 17.75
    assert [(u.status, u.reason) for u in fake.log.updates] == [
        ("applied", ""),
        ("applied", ""),
        ("dropped", "stale"),
        ("applied", ""),
    ]


def test_fedbuff_server_lr_scales_the_step() -> None:
    fake = _two_clients()
    assert w_of(_fedbuff(fake, 2, optimizer=FedAvg(lr=0.5))) == 0.5 * 7.75


def test_async_pacing_matches_sync_rounds() -> None:
    for total, per_round, expected in ((6, 2, [2, 2, 2]), (7, 3, [3, 3, 1])):
        fake = Fake(compute_s=[1.0, 2.0, 3.0], delta=[1.0] * 3, samples=[1] * 3)
        rounds = Rounds(fake)
        _fedasync(fake, total, on_round=rounds, updates_per_round=per_round, concurrency=3)
        assert [len(c[2]) for c in rounds.calls] == expected
        assert [c[0] for c in rounds.calls] == list(range(len(expected)))


def test_async_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        _fedasync(_two_clients(), 3, concurrency=3)
    with pytest.raises(ValueError, match="mixing"):
        _fedasync(_two_clients(), 3, mixing=0.0)
    with pytest.raises(ValueError, match="buffer_size"):
        _fedbuff(_two_clients(), 3, buffer_size=0)


def test_zero_updates_only_broadcast() -> None:
    fake = _two_clients()
    assert w_of(_fedbuff(fake, 0)) == 0.0
    assert fake.log.updates == []
    assert [r.kind for r in fake.log.transfers] == ["model_down", "model_down"]


# -- server optimizers in the drivers -----------------------------------------------------------


def _adam() -> FedAdam:
    # beta1 = beta2 = 0.5, tau = 1: v starts at tau^2 = 1.
    return FedAdam(lr=1.0, beta1=0.5, beta2=0.5, tau=1.0)


def test_sync_rounds_step_fedadam_along_each_rounds_mean() -> None:
    # Clients return what they received plus -2 (1 sample) or +2 (3 samples): every round's
    # weighted mean is w + (-2 + 6)/4 = w + 1, so Δ = 1 each round.
    # Round 0: m = 0.5, v = 0.5*1 + 0.5*1 = 1, w = 0 + 0.5/(1 + 1) = 0.25.
    # Round 1: m = 0.25 + 0.5 = 0.75, v = 1, w = 0.25 + 0.75/2 = 0.625 (plain FedAvg: 2).
    fake = Fake(compute_s=[1.0, 3.0], delta=[-2.0, 2.0], samples=[1, 3])
    rounds = Rounds(fake, n=None)
    final = fake.run(
        sync_rounds(
            fake.world,
            stage="st",
            rounds=2,
            client_ids=fake.client_ids,
            rule=WeightedMean(initial(), _adam()),
            plan=fake.plan,
            on_round=rounds,
        )
    )
    assert [c[1] for c in rounds.calls] == [0.25, 0.625]
    assert w_of(final, n=None) == 0.625
    with pytest.raises(ValueError, match="not both"):
        fake.run(
            sync_rounds(
                fake.world,
                stage="st",
                rounds=1,
                client_ids=fake.client_ids,
                initial=initial(),
                rule=WeightedMean(initial()),
                plan=fake.plan,
                on_round=rounds,
            )
        )


def test_fedbuff_steps_fedadam_once_per_buffer() -> None:
    # The timeline of test_fedbuff_buffer_of_two_by_hand with deltas -2 (1 sample) and +2
    # (3 samples): both buffers hold one delta of each, so Δ = (-2 + 6)/4 = 1 at both steps.
    # Step 1 (t=5): m = 0.5, v = 1, w = 0.25. Step 2 (t=10): m = 0.75, v = 1, w = 0.625.
    fake = Fake(compute_s=[1.0, 3.0], delta=[-2.0, 2.0], samples=[1, 3])
    final = _fedbuff(fake, 4, optimizer=_adam())
    assert w_of(final) == 0.625
    assert fake.log.transfers[-1].round == 2  # two server steps


# -- properties --------------------------------------------------------------------------------

TIMES = st.sampled_from([0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 7.0]) | st.floats(0.1, 5.0)
PROPERTY = settings(max_examples=100, deadline=None, derandomize=True)


def _check_conservation(fake: Fake, expected_dispatches: int) -> None:
    """Each dispatched update ends in exactly one record, and the record is coherent."""
    updates = fake.log.updates
    assert len(updates) == expected_dispatches == len(fake.plan_calls)
    assert Counter(u.client for u in updates) == Counter(c for c, _ in fake.plan_calls)
    # Arrivals are recorded in the order they land: simulated time never goes back.
    arrivals = [u.t_arrival_s for u in updates if u.t_arrival_s is not None]
    assert arrivals == sorted(arrivals)
    for reason in sorted({u.reason for u in updates if u.reason}):
        event(f"dropped: {reason}")  # shows with --hypothesis-show-statistics
    for u in updates:
        assert u.status in ("applied", "dropped")
        assert (u.status == "dropped") == (u.reason in REASONS)
        assert (u.status == "applied") == (u.reason == "")
        if u.t_arrival_s is not None:
            assert u.t_arrival_s >= u.t_dispatch_s + 2 * fake.delay_s
            assert u.staleness is not None and u.staleness >= 0
        if u.reason == "dropout":
            assert u.t_arrival_s is None
    # The trace's staleness is the record's: both measured when the upload landed.
    traced = Counter(
        (r.src, r.t_end_s, r.round, r.staleness)
        for r in fake.log.transfers
        if r.kind == "update_up"
    )
    landed = Counter(
        (client_node(u.client), u.t_arrival_s, u.round, u.staleness)
        for u in updates
        if u.t_arrival_s is not None
    )
    assert landed <= traced


def _snapshot(fake: Fake, final: Weights) -> tuple:
    return (fake.log.updates, fake.log.transfers, fake.log.rounds, final["w"].tolist())


@PROPERTY
@given(
    compute=st.lists(TIMES, min_size=1, max_size=5),
    delay=st.sampled_from([0.0, 0.5, 1.0]),
    data=st.data(),
)
def test_async_drivers_properties(compute: list[float], delay: float, data: st.DataObject) -> None:
    n = len(compute)
    mode = data.draw(st.sampled_from(["fedasync", "fedbuff"]))
    total = data.draw(st.integers(0, 14))
    concurrency = data.draw(st.integers(1, n))
    max_staleness = data.draw(st.none() | st.integers(0, 3))
    dropout = data.draw(st.sampled_from([0.0, 0.3]))
    fn_name = data.draw(st.sampled_from(["constant", "polynomial", "hinge"]))
    params = {"constant": {}, "polynomial": {"a": 0.5}, "hinge": {"a": 2.0, "b": 1.0}}[fn_name]
    staleness_fn = by_name(fn_name, **params)
    buffer_size = data.draw(st.integers(1, 4))
    seed = data.draw(st.integers(0, 3))

    def once() -> tuple[Fake, Weights]:
        fake = Fake(
            compute_s=compute,
            delta=[float(c + 1) for c in range(n)],
            samples=[c + 1 for c in range(n)],
            delay_s=delay,
            dropout=dropout,
            seed=seed,
        )
        common: dict[str, Any] = {
            "total_updates": total,
            "client_ids": fake.client_ids,
            "initial": initial(),
            "plan": fake.plan,
            "on_round": Rounds(fake),
            "rng": np.random.default_rng(seed),
            "concurrency": concurrency,
            "max_staleness": max_staleness,
            "staleness_fn": staleness_fn,
            "updates_per_round": n,
        }
        fake.round_calls = common["on_round"]  # type: ignore[attr-defined]
        if mode == "fedasync":
            driver = fedasync(fake.world, stage="st", mixing=0.6, **common)
        else:
            driver = fedbuff(fake.world, stage="st", buffer_size=buffer_size, **common)
        return fake, fake.run(driver)

    fake, final = once()
    _check_conservation(fake, total)
    updates = fake.log.updates
    applied = [u for u in updates if u.status == "applied"]
    for u in updates:
        if max_staleness is not None and u.status == "applied":
            assert u.staleness is not None and u.staleness <= max_staleness
        if u.reason == "stale":
            assert max_staleness is not None and u.staleness > max_staleness
        assert u.reason in ("", "stale", "dropout")
    # A client is dispatched again only after its previous update has landed.
    for c in fake.client_ids:
        mine = [u for u in updates if u.client == c]
        for before, after in itertools.pairwise(mine):
            if before.t_arrival_s is not None:
                assert after.t_dispatch_s >= before.t_arrival_s
    version = fake.log.transfers[-1].round if total else 0
    if mode == "fedasync":
        assert version == len(applied)
    else:
        assert version == math.ceil(len(applied) / buffer_size)
    assert len(fake.round_calls.calls) == math.ceil(total / n)  # type: ignore[attr-defined]
    # Same inputs, same seeds: the same records, trace and model.
    again, final_again = once()
    assert _snapshot(again, final_again) == _snapshot(fake, final)


@PROPERTY
@given(
    compute=st.lists(TIMES, min_size=1, max_size=5),
    delay=st.sampled_from([0.0, 0.5, 1.0]),
    data=st.data(),
)
def test_sync_rounds_properties(compute: list[float], delay: float, data: st.DataObject) -> None:
    n = len(compute)
    rounds = data.draw(st.integers(1, 3))
    k = data.draw(st.integers(1, n))
    over = data.draw(st.sampled_from([0.0, 0.5, 1.0]))
    deadline = data.draw(st.none() | st.sampled_from([1.0, 2.5, 4.0, 8.0]))
    dropout = data.draw(st.sampled_from([0.0, 0.3]))
    seed = data.draw(st.integers(0, 3))
    chosen = SyncSettings(clients_per_round=k, over_selection=over, deadline_s=deadline)

    def once() -> tuple[Fake, Weights]:
        fake = Fake(
            compute_s=compute,
            delta=[float(c + 1) for c in range(n)],
            samples=[c + 1 for c in range(n)],
            delay_s=delay,
            dropout=dropout,
            seed=seed,
        )
        driver = sync_rounds(
            fake.world,
            stage="st",
            rounds=rounds,
            client_ids=fake.client_ids,
            initial=initial(),
            plan=fake.plan,
            on_round=(calls := Rounds(fake, n=None)),
            settings=chosen,
            rng=np.random.default_rng(seed),
        )
        fake.round_calls = calls  # type: ignore[attr-defined]
        return fake, fake.run(driver)

    fake, final = once()
    selected = chosen.selected(n)
    _check_conservation(fake, rounds * selected)
    for u in fake.log.updates:
        assert u.reason in ("", "late", "over_selected", "dropout")
        if u.status == "applied":
            assert u.staleness == 0
            if deadline is not None:
                assert u.t_arrival_s is not None
                assert u.t_arrival_s <= u.t_dispatch_s + deadline
    assert len(fake.log.rounds) == rounds
    for r in fake.log.rounds:
        assert r.selected == selected
        assert r.applied <= k
        assert r.applied == sum(
            1 for u in fake.log.updates if u.round == r.round and u.status == "applied"
        )
        if deadline is not None:
            assert r.t_end_s - r.t_start_s <= deadline
    starts = [r.t_start_s for r in fake.log.rounds]
    assert starts == sorted(starts)
    assert len(fake.round_calls.calls) == rounds  # type: ignore[attr-defined]
    again, final_again = once()
    assert _snapshot(again, final_again) == _snapshot(fake, final)


def test_records_export_rows_sorted() -> None:
    fake = Fake(compute_s=[3.0, 1.0], delta=[1.0, 2.0], samples=[1, 1])
    fake.run(
        sync_rounds(
            fake.world,
            stage="st",
            rounds=1,
            client_ids=fake.client_ids,
            initial=initial(),
            plan=fake.plan,
            on_round=Rounds(fake, n=None),
        )
    )
    recorder = fake.world.recorder
    rows = recorder.update_rows()
    assert [(r["method"], r["client"], r["t_arrival_s"]) for r in rows] == [
        ("fake", 0, 5.0),
        ("fake", 1, 3.0),
    ]
    assert recorder.round_rows()[0]["closed_by"] == "all"
