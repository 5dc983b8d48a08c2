"""The autoscaler's decision (shipyard.control.kpa) driven second by second against a simulated app: recorded
traces of ready instances over time, checked by value."""

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from shipyard.control.kpa import Decision, Observation, Policy, ScalerMemory, decide


@dataclass
class Trace:
    decisions: list[Decision]

    @property
    def ready(self) -> list[int]:
        """Ready instances at each second (what each decision saw)."""
        return [d.current for d in self.decisions]

    def runs(self, start: int = 0) -> list[tuple[int, int]]:
        """(second, ready count) at each change from `start` on: the trace in short."""
        out: list[tuple[int, int]] = []
        for t, n in enumerate(self.ready[start:], start):
            if not out or out[-1][1] != n:
                out.append((t, n))
        return out


def simulate(policy: Policy, load: Callable[[int], float], seconds: int, *, ready: int = 1, boot: int = 1,
             capacity: int | None = None, noise: float = 0.0, seed: int = 0) -> Trace:
    """Drives `decide` once a second like the loop will: a sample of `load(t)` in flight (± uniform noise), a
    decision, then acting on it. An instance asked for becomes ready `boot` seconds later; a scale-down cancels
    instances still starting first, then stops ready ones at once."""
    rng = random.Random(seed)
    observations: list[Observation] = []
    memory = ScalerMemory()
    starting: list[int] = []  # the second each instance asked for becomes ready
    decisions = []
    for t in range(seconds):
        ready += sum(1 for s in starting if s <= t)
        starting = [s for s in starting if s > t]
        observations.append(Observation(float(t), max(0.0, load(t) + rng.uniform(-noise, noise))))
        observations = [o for o in observations if o.at > t - policy.stable_window]  # what the loop would keep
        decision = decide(policy, observations, ready, memory, float(t), capacity)
        memory = decision.memory
        decisions.append(decision)
        pending = ready + len(starting)
        if decision.desired > pending:
            starting += [t + boot] * (decision.desired - pending)
        elif decision.desired < pending:
            cancelled = min(pending - decision.desired, len(starting))
            starting = starting[:len(starting) - cancelled]
            ready -= pending - decision.desired - cancelled
    return Trace(decisions)


def step(before: float, after: float, at: int, until: int | None = None) -> Callable[[int], float]:
    return lambda t: after if at <= t and (until is None or t < until) else before


def test_load_step_from_1_to_32_reaches_4_instances_within_the_panic_window():
    trace = simulate(Policy(min_instances=1, max_instances=10, target=10), step(1, 32, at=60), 90)
    # Each second of the step lifts the 6 s average; panic starts at the first that asks for 2× the ready count
    # and the 6th sample of 32 asks for all 4 (32 / 10): asked at 65, ready at 66, within 6 s of the step.
    assert trace.runs() == [(0, 1), (62, 2), (64, 3), (66, 4)]
    assert [d.desired for d in trace.decisions[59:67]] == [1, 1, 2, 2, 3, 3, 4, 4]
    assert not trace.decisions[60].panicking and trace.decisions[61].panicking
    assert trace.decisions[61].reason == ("panic: 11.3 in flight over 6 s asks for 2 (≥ 2× 1 ready); "
                                          "not scaling down while panicking")
    assert all(d.desired == 4 for d in trace.decisions[65:])


def test_steady_noisy_load_holds_steady():
    # 25 ± 8 in flight with target 10: the 60 s average stays in (20, 30] and the 6 s one never asks for 2× 3.
    trace = simulate(Policy(min_instances=1, max_instances=10, target=10), lambda t: 25, 600, noise=8, seed=7)
    assert trace.runs() == [(0, 1), (1, 3)]
    assert not any(d.panicking for d in trace.decisions[61:])
    last = trace.decisions[-1].reason
    assert last.startswith("stable: ") and last.endswith("/ target 10 → 3")


def test_after_the_load_stops_the_count_goes_down_after_the_delay_halving_at_most_to_min():
    # 80 in flight for 20 s from a single instance: panic asks for 8 at once and holds them; panic ends a stable
    # window after the burst (t=60), the scale-down delay holds 8 another 30 s (asked at 89, stopped by 90), then
    # at most halving per second while the delay still holds what the stable average asked for (3, then 2, then 1).
    trace = simulate(Policy(min_instances=1, max_instances=10, target=10), step(0, 80, at=0, until=20), 200)
    assert trace.runs() == [(0, 1), (1, 8), (90, 4), (91, 3), (94, 2), (102, 1)]
    assert [d.panicking for d in trace.decisions[58:62]] == [True, True, False, False]
    assert trace.decisions[60].reason.startswith("panic over: no burst for 60 s; stable: 25.3 in flight over 60 s")
    assert trace.decisions[59].reason == ("panic since 59 s ago, until 60 s pass without a burst (1 s left): "
                                          "0.0 in flight over 6 s asks for 0; holding 8, not scaling down while "
                                          "panicking")
    assert "scale-down held: desired was 8 within the last 30 s" in trace.decisions[88].reason
    assert trace.decisions[89].reason == ("stable: 0.0 in flight over 60 s / target 10 → 0; scale-down held: desired "
                                          "was 3 within the last 30 s; scale-down limited to 4: at most ÷2 per "
                                          "decision from 8")
    for before, after in zip(trace.ready, trace.ready[1:]):
        assert after >= math.ceil(before / 2)
    assert trace.decisions[-1].desired == 1 and trace.decisions[-1].capped_by == "min"
    assert trace.decisions[-1].reason.endswith("raised to --min 1")


def test_with_the_default_stable_window_the_count_follows_the_average_down_a_delay_late():
    trace = simulate(Policy(min_instances=0, max_instances=10, target=10), step(80, 0, at=120), 260, ready=8)
    # The 60 s average falls by 80/60 a second from t=120: it asks for 7 from 127 … 0 from 180; the delay holds
    # each count until 30 s after the last second that asked for it (8 last at 126: 7 asked at 156, ready at 157).
    assert trace.runs(100) == [(100, 8), (157, 7), (164, 6), (172, 5), (179, 4), (187, 3), (194, 2), (202, 1)]
    # Never to 0: the rate limit's ceil(1 / 2) keeps the last instance; going to zero is decided elsewhere.
    assert trace.decisions[-1].desired == 1 and trace.decisions[-1].stable_concurrency == 0
    assert trace.decisions[-1].reason.endswith("staying at 1: going to zero is decided elsewhere")


def test_panic_never_scales_down_and_ends_a_stable_window_after_the_burst():
    trace = simulate(Policy(min_instances=1, max_instances=10, target=10), step(1, 32, at=60, until=80), 200)
    panicking = [t for t, d in enumerate(trace.decisions) if d.panicking]
    # The panic condition last held at 61 (asking 2 of 1 ready); 60 s later the stable window has seen it all.
    assert panicking == list(range(61, 121))
    for t in panicking[1:]:
        assert trace.decisions[t].desired >= trace.decisions[t - 1].desired
        assert trace.decisions[t].desired >= trace.decisions[t].current
    assert trace.decisions[100].reason == ("panic since 39 s ago, until 60 s pass without a burst (21 s left): "
                                           "1.0 in flight over 6 s asks for 1; holding 4, not scaling down while "
                                           "panicking")
    assert trace.runs(60) == [(60, 1), (62, 2), (64, 3), (66, 4), (151, 2), (152, 1)]


def test_a_panic_that_the_stable_window_outgrows_takes_the_larger():
    memory = ScalerMemory(panic_since=0.0, panic_desired=2, panic_last_held=0.0)
    observations = [Observation(float(t), 50.0) for t in range(1, 11)]
    decision = decide(Policy(1, 10, 10), observations, 2, memory, 10.0)
    assert decision.panicking and decision.desired == 5 and decision.memory.panic_desired == 5


def test_never_above_max_and_the_reason_says_so():
    trace = simulate(Policy(min_instances=1, max_instances=5, target=10), lambda t: 100, 120)
    assert max(trace.ready) == 5 and trace.runs() == [(0, 1), (1, 5)]
    decision = trace.decisions[30]
    assert decision.desired == 5 and decision.capped_by == "max" and decision.reason.endswith("capped at --max 5")


def test_never_above_the_machines_capacity_and_the_reason_says_so():
    trace = simulate(Policy(min_instances=1, max_instances=10, target=10), lambda t: 100, 120, capacity=4)
    assert max(trace.ready) == 4 and trace.runs() == [(0, 1), (1, 4)]
    assert trace.decisions[0].reason.endswith("capped at 4: the machine's memory fits 4 instances of this app "
                                               "(3 more than the 1 ready)")
    assert trace.decisions[30].capped_by == "capacity"
    assert trace.decisions[30].reason.endswith("capped at 4: the machine's memory fits 4 instances of this app")


@pytest.mark.parametrize("seed", range(20))
def test_random_traces_stay_within_bounds_and_panic_never_scales_down(seed):
    rng = random.Random(seed)
    low = rng.randint(0, 3)
    policy = Policy(min_instances=low, max_instances=rng.randint(max(low, 1), 12), target=rng.choice([5, 10, 20]),
                    scale_down_delay=rng.choice([0, 10, 30]))
    capacity = rng.choice([None, 2, 6])
    bursts = {t: rng.uniform(0, 100) for t in range(0, 400, 20)}  # a new level every 20 s
    trace = simulate(policy, lambda t: bursts[t - t % 20], 400, ready=rng.randint(0, 4), boot=rng.randint(1, 3),
                     capacity=capacity, noise=5, seed=seed)
    ceiling = min(policy.max_instances, capacity if capacity is not None else policy.max_instances)
    for d in trace.decisions:
        assert d.desired <= ceiling
        assert d.desired >= min(policy.min_instances, ceiling)
        if d.panicking:
            assert d.desired >= min(d.current, ceiling)
        if d.desired == ceiling < d.memory.recent[-1][1]:
            assert d.capped_by in ("max", "capacity") and "capped at" in d.reason


def test_capacity_wins_over_min():
    decision = decide(Policy(3, 10, 10), [], 0, ScalerMemory(), 0.0, capacity=1)
    assert decision.desired == 1 and decision.capped_by == "capacity"
    assert decision.reason.endswith("fits 1 instances of this app (1 more than the 0 ready), fewer than --min 3")


def test_never_below_min_and_the_reason_says_so():
    trace = simulate(Policy(min_instances=2, max_instances=10, target=10), lambda t: 0, 60, ready=5)
    # Nothing was asked for before the first decision, so the delay has nothing to hold: down at once, halving.
    assert trace.runs() == [(0, 5), (1, 3), (2, 2)]
    assert [(d.desired, d.capped_by) for d in trace.decisions[:3]] == [(3, None), (2, "min"), (2, "min")]
    assert trace.decisions[0].reason.endswith("scale-down limited to 3: at most ÷2 per decision from 5")
    assert trace.decisions[1].reason.endswith("/ target 10 → 0; raised to --min 2")


def test_from_zero_with_load_scales_up():
    # Light load: 1 instance, no panic (1 of "1" ready is under 2×); heavy load: panic asks for all of it at once.
    light = simulate(Policy(min_instances=0, max_instances=10, target=10), lambda t: 3, 10, ready=0)
    assert light.runs() == [(0, 0), (1, 1)] and not any(d.panicking for d in light.decisions)
    heavy = simulate(Policy(min_instances=0, max_instances=10, target=10), lambda t: 45, 10, ready=0, boot=2)
    assert heavy.runs() == [(0, 0), (2, 5)]
    assert heavy.decisions[0].reason.startswith("panic: 45.0 in flight over 6 s asks for 5 (≥ 2× 0 ready)")
    # Still booting at t=1: 0 ready, the same 5 asked for, none more.
    assert [d.desired for d in heavy.decisions[:3]] == [5, 5, 5]


def test_zero_with_no_load_stays_at_zero():
    decision = decide(Policy(0, 5, 10), [Observation(0.0, 0.0)], 0, ScalerMemory(), 0.0)
    assert decision.desired == 0 and not decision.panicking


def test_no_samples_at_all_gives_min_and_says_so():
    decision = decide(Policy(1, 5, 10), [], 1, ScalerMemory(), 100.0)
    assert decision.desired == 1 and decision.stable_concurrency == 0 and decision.panic_concurrency == 0
    assert decision.reason == ("stable: no samples in the last 60 s (taken as 0 in flight) / target 10 → 0; "
                               "raised to --min 1")
    # Samples older than the stable window count as none; so do unusable ones.
    stale = [Observation(10.0, 50.0), Observation(99.0, math.nan)]
    assert decide(Policy(2, 5, 10), stale, 0, ScalerMemory(), 100.0).desired == 2


def test_a_decision_is_a_pure_function_of_its_inputs():
    policy = Policy(1, 10, 10)
    observations = [Observation(float(t), 12.0) for t in range(50)]
    memory = ScalerMemory(recent=((45.0, 3), (10.0, 9)))
    first = decide(policy, observations, 2, memory, 49.0)
    assert first == decide(policy, observations, 2, memory, 49.0)
    # The delay remembers only its own window: the 9 from t=10 is dropped, the 3 from t=45 holds.
    assert first.desired == 3 and first.memory.recent == ((45.0, 3), (49.0, 2))


@pytest.mark.parametrize("fields, message", [
    ({"target": 0}, "--concurrency (in-flight requests per instance) must be more than 0, not 0"),
    ({"target": -5}, "--concurrency (in-flight requests per instance) must be more than 0, not -5"),
    ({"target": math.nan}, "--concurrency"),
    ({"min_instances": 6, "max_instances": 5}, "--min 6 is more than --max 5"),
    ({"min_instances": -1}, "--min can't be negative"),
    ({"min_instances": 0, "max_instances": 0}, "--max must be at least 1"),
    ({"panic_window": 90}, "the panic window (90 s) must be more than 0 and no longer than the stable window (60 s)"),
    ({"panic_threshold": 0.5}, "the panic threshold must be at least 1"),
    ({"scale_down_delay": -1}, "the scale-down delay can't be negative"),
    ({"max_scale_down_rate": 1}, "(1 would never scale)"),
])
def test_invalid_policies_raise_a_readable_error(fields, message):
    values = {"min_instances": 1, "max_instances": 5, "target": 10.0} | fields
    with pytest.raises(ValueError) as raised:
        Policy(**values)
    assert str(raised.value).startswith("invalid autoscaling policy: ")
    assert message in str(raised.value)


def test_invalid_inputs_raise():
    with pytest.raises(ValueError, match="ready instance count"):
        decide(Policy(1, 5, 10), [], -1, ScalerMemory(), 0.0)
    with pytest.raises(ValueError, match="capacity"):
        decide(Policy(1, 5, 10), [], 1, ScalerMemory(), 0.0, capacity=-1)
