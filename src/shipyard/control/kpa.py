"""The autoscaler's decision, in the manner of Knative's KPA: a pure function of the policy, the in-flight samples,
the ready count and what earlier decisions remembered. No clock, no I/O, no global state: the loop calls it once a
second, acts on `Decision.desired` and hands `Decision.memory` to the next call."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

# A float average such as 30.000000000004 (sums of samples) must not ask for one instance more than 30 does.
_EPSILON = 1e-9


@dataclass(frozen=True)
class Policy:
    min_instances: int  # may be 0: the floor is 0 (going to zero is decided elsewhere)
    max_instances: int
    target: float  # in-flight requests per instance wanted
    stable_window: float = 60.0
    panic_window: float = 6.0
    panic_threshold: float = 2.0  # panic when the panic window asks for >= this × the ready instances
    scale_down_delay: float = 30.0  # a scale-down only happens if every desired count in this window agrees
    max_scale_down_rate: float = 2.0  # at most ÷ this per decision
    max_scale_up_rate: float = 1000.0  # at most × this per decision

    def __post_init__(self) -> None:
        # Checked here rather than in decide() so that an invalid policy can't even be built (nor stored by a caller);
        # the messages name the CLI's flags, which is where a person sets these.
        problems = []
        if not (math.isfinite(self.target) and self.target > 0):
            problems.append(f"--concurrency (in-flight requests per instance) must be more than 0, not {self.target:g}")
        if self.min_instances < 0:
            problems.append(f"--min can't be negative ({self.min_instances})")
        if self.max_instances < 1:
            problems.append(f"--max must be at least 1 ({self.max_instances})")
        if self.min_instances > self.max_instances:
            problems.append(f"--min {self.min_instances} is more than --max {self.max_instances}")
        if not 0 < self.panic_window <= self.stable_window:
            problems.append(f"the panic window ({self.panic_window:g} s) must be more than 0 and no longer than the "
                            f"stable window ({self.stable_window:g} s)")
        if not self.panic_threshold >= 1:
            problems.append(f"the panic threshold must be at least 1 (× the ready instances), "
                            f"not {self.panic_threshold:g}")
        if not self.scale_down_delay >= 0:
            problems.append(f"the scale-down delay can't be negative ({self.scale_down_delay:g} s)")
        if not (self.max_scale_down_rate > 1 and self.max_scale_up_rate > 1):
            problems.append("the most a decision may scale down (÷) and up (×) must be more than 1, "
                            f"not {self.max_scale_down_rate:g} and {self.max_scale_up_rate:g} (1 would never scale)")
        if problems:
            raise ValueError("invalid autoscaling policy: " + "; ".join(problems))


@dataclass(frozen=True)
class Observation:
    at: float  # seconds (monotonic clock of the caller)
    in_flight: float  # requests in flight, summed over the app's instances, at that moment


@dataclass(frozen=True)
class ScalerMemory:
    """What the next decision needs from the earlier ones."""

    panic_since: float | None = None  # when the current panic began (None: not panicking)
    panic_desired: int = 0  # the most this panic has asked for: panic never goes lower
    recent: tuple[tuple[float, int], ...] = ()  # (at, desired before the scale-down delay), within the delay window
    panic_last_held: float | None = None  # the last time the panic condition held: panic ends a stable window later


@dataclass(frozen=True)
class Decision:
    at: float
    current: int  # ready instances the caller has now
    desired: int  # what it should have
    stable_concurrency: float  # average in flight over the stable window
    panic_concurrency: float  # average over the panic window
    panicking: bool
    reason: str  # for a person: each step that shaped `desired`, "; "-separated
    memory: ScalerMemory
    capped_by: str | None = None  # "max" | "capacity" | "min" | None


def _average(observations: Sequence[Observation], now: float, window: float) -> tuple[float, int]:
    """The mean of the samples with `at` in (now - window, now], and how many there were. A mean of samples rather
    than of time, so a late or missing sample doesn't count as an idle second; unusable values (NaN) are skipped."""
    values = [o.in_flight for o in observations if now - window < o.at <= now and math.isfinite(o.in_flight)]
    return (sum(values) / len(values) if values else 0.0), len(values)


def _instances_for(concurrency: float, target: float) -> int:
    return max(0, math.ceil(concurrency / target - _EPSILON))


def _describe(average: float, samples: int, window: float) -> str:
    if not samples:
        return f"no samples in the last {window:g} s (taken as 0 in flight)"
    return f"{average:.1f} in flight over {window:g} s"


def decide(policy: Policy, observations: Sequence[Observation], current: int, memory: ScalerMemory,
           now: float, capacity: int | None = None) -> Decision:
    """`observations`: at least the last stable window's samples (older ones are ignored);
    `capacity`: the most instances the machine can hold for this app now, those it runs included (None: no limit)."""
    if current < 0:
        raise ValueError(f"the ready instance count can't be negative ({current})")
    if capacity is not None and capacity < 0:
        raise ValueError(f"the machine's capacity can't be negative ({capacity})")
    stable, stable_samples = _average(observations, now, policy.stable_window)
    panic, panic_samples = _average(observations, now, policy.panic_window)
    want_stable = _instances_for(stable, policy.target)
    want_panic = _instances_for(panic, policy.target)

    # max(current, 1): with nothing ready (at zero, or the first instance booting) the ratio must not divide by zero,
    # and a burst on a stopped app should still panic; `> current` keeps a threshold of 1 from panicking at steady load.
    bursting = want_panic > current and want_panic / max(current, 1) >= policy.panic_threshold
    last_burst = now if bursting else memory.panic_last_held
    # Panic lasts until the burst has had a whole stable window to show in the stable average (Knative's rule).
    panicking = last_burst is not None and now - last_burst < policy.stable_window
    reasons = []
    if panicking:
        since = memory.panic_since if memory.panic_since is not None else now
        # Never lower than what this panic asked before, what the stable window asks (it can be the larger) or what
        # is ready now: panic only scales up.
        base = max(want_panic, want_stable, memory.panic_desired, current)
        if bursting:
            reasons.append(f"panic: {_describe(panic, panic_samples, policy.panic_window)} asks for {want_panic} "
                           f"(≥ {policy.panic_threshold:g}× {current} ready)")
        else:
            left = policy.stable_window - (now - last_burst) if last_burst is not None else 0.0
            reasons.append(f"panic since {now - since:.0f} s ago, until {policy.stable_window:g} s pass without a "
                           f"burst ({left:.0f} s left): "
                           f"{_describe(panic, panic_samples, policy.panic_window)} asks for {want_panic}")
        held = f"holding {base}, " if base > want_panic else ""
        reasons.append(f"{held}not scaling down while panicking")
        kept = ScalerMemory(panic_since=since, panic_desired=base, panic_last_held=last_burst)
    else:
        base = want_stable
        over = f"panic over: no burst for {policy.stable_window:g} s; " if memory.panic_last_held is not None else ""
        reasons.append(f"{over}stable: {_describe(stable, stable_samples, policy.stable_window)} / target "
                       f"{policy.target:g} → {want_stable}")
        kept = ScalerMemory()

    # Scale-down delay: the most asked for within the delay, so a brief dip doesn't stop instances that the next
    # second needs again. Panic decisions are recorded too, so the count is held a delay after panic ends.
    recent = tuple((at, n) for at, n in memory.recent if now - policy.scale_down_delay < at <= now) + ((now, base),)
    desired = max(n for _, n in recent)
    if desired > base:
        reasons.append(f"scale-down held: desired was {desired} within the last {policy.scale_down_delay:g} s")

    # Rate limits relative to what is ready. ceil() for the floor: 1 never goes to 0 here (zero is decided elsewhere).
    lowest = math.ceil(current / policy.max_scale_down_rate)
    highest = math.ceil(max(current, 1) * policy.max_scale_up_rate)
    if desired < lowest and lowest > policy.min_instances:  # else --min is what stops the scale-down: it says so
        desired = lowest
        reasons.append("staying at 1: going to zero is decided elsewhere" if current == 1 else
                       f"scale-down limited to {lowest}: at most ÷{policy.max_scale_down_rate:g} per decision "
                       f"from {current}")
    elif desired > highest:
        desired = highest
        reasons.append(f"scale-up limited to {highest}: at most ×{policy.max_scale_up_rate:g} per decision "
                       f"from {max(current, 1)}")

    # Bounds last, so a lowered --max or a full machine applies at once whatever the windows say. The machine wins
    # over --min: instances that don't fit in memory can't be started anyway.
    capped_by = None
    if desired > policy.max_instances:
        desired, capped_by = policy.max_instances, "max"
        reasons.append(f"capped at --max {policy.max_instances}")
    elif desired < policy.min_instances:
        desired, capped_by = policy.min_instances, "min"
        reasons.append(f"raised to --min {policy.min_instances}")
    if capacity is not None and desired > capacity:
        desired, capped_by = capacity, "capacity"
        more = f" ({capacity - current} more than the {current} ready)" if capacity > current else ""
        short = f", fewer than --min {policy.min_instances}" if capacity < policy.min_instances else ""
        reasons.append(f"capped at {capacity}: the machine's memory fits {capacity} instances of this app{more}{short}")

    return Decision(at=now, current=current, desired=desired, stable_concurrency=stable, panic_concurrency=panic,
                    panicking=panicking, reason="; ".join(reasons),
                    memory=replace(kept, recent=recent), capped_by=capped_by)
