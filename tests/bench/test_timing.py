"""The timer, driven by a fake clock: first call apart, warm-up excluded, statistics, budget."""
import numpy as np
import pytest

from cnnkit.bench.timing import HostClock, Timing, measure


class FakeWork:
    """A function whose n-th call takes ``durations[n]`` seconds on a fake clock."""

    def __init__(self, durations):
        self.durations = list(durations)
        self.now = 0.0
        self.calls = 0

    def __call__(self):
        self.now += self.durations[self.calls]
        self.calls += 1

    def clock(self):
        return HostClock(now=lambda: self.now)


def test_first_call_is_separate_and_warmup_is_not_timed():
    # first call 5 s (compilation), two warm-ups of 1 s and 2 s, then five timed calls
    work = FakeWork([5.0, 1.0, 2.0, 0.010, 0.012, 0.011, 0.013, 0.030])
    timing = measure(work, work.clock(), warmup=2, repeat=5)
    assert timing.first_call_ms == pytest.approx(5000.0)
    assert timing.times_ms == pytest.approx([10.0, 12.0, 11.0, 13.0, 30.0])
    assert (timing.warmup, timing.repeats, timing.requested_repeat) == (2, 5, 5)
    assert work.calls == 8


def test_statistics_are_median_quartiles_and_iqr():
    work = FakeWork([1.0] + [t / 1e3 for t in (4.0, 1.0, 3.0, 2.0, 5.0, 100.0)])
    timing = measure(work, work.clock(), warmup=0, repeat=6)
    times = [4.0, 1.0, 3.0, 2.0, 5.0, 100.0]
    assert timing.median_ms == pytest.approx(3.5)
    assert timing.q1_ms == pytest.approx(np.percentile(times, 25))
    assert timing.q3_ms == pytest.approx(np.percentile(times, 75))
    assert timing.iqr_ms == pytest.approx(np.percentile(times, 75) - np.percentile(times, 25))
    assert timing.spread == pytest.approx(timing.iqr_ms / 3.5)
    assert (timing.min_ms, timing.max_ms) == pytest.approx((1.0, 100.0))
    assert timing.mean_ms == pytest.approx(np.mean(times))
    assert timing.stdev_ms == pytest.approx(np.std(times, ddof=1))


def test_single_repeat_has_zero_spread_and_stdev():
    timing = Timing([2.0], first_call_ms=9.0, warmup=0, requested_repeat=1)
    assert (timing.median_ms, timing.iqr_ms, timing.stdev_ms, timing.spread) == (2.0, 0.0, 0.0, 0.0)


def test_budget_stops_repeats_after_min_repeat_and_says_so():
    work = FakeWork([0.1] + [1.0] * 20)
    timing = measure(work, work.clock(), warmup=0, repeat=20, max_seconds=2.5, min_repeat=3)
    assert timing.repeats == 3 and timing.requested_repeat == 20


def test_budget_cuts_warmup_at_half_but_keeps_one():
    work = FakeWork([0.1] + [2.0] * 10)
    timing = measure(work, work.clock(), warmup=5, repeat=3, max_seconds=3.0)
    assert timing.warmup == 1
    assert timing.repeats == 3  # min_repeat still honoured


def test_before_each_runs_untimed_before_every_call():
    work = FakeWork([0.001] * 6)
    flushes = []

    def flush():
        flushes.append(work.calls)
        work.now += 10.0  # slow, but outside the timed region

    timing = measure(work, work.clock(), warmup=2, repeat=3, before_each=flush)
    assert flushes == [0, 1, 2, 3, 4, 5]
    assert timing.first_call_ms == pytest.approx(1.0) and max(timing.times_ms) == pytest.approx(1.0)


def test_to_dict_holds_every_figure():
    data = Timing([1.0, 2.0, 3.0], first_call_ms=7.0, warmup=1, requested_repeat=3).to_dict()
    assert data["median_ms"] == 2.0 and data["first_call_ms"] == 7.0 and data["times_ms"] == [1.0, 2.0, 3.0]
    assert {"min_ms", "max_ms", "q1_ms", "q3_ms", "iqr_ms", "mean_ms", "stdev_ms", "spread", "repeats",
            "requested_repeat", "warmup"} <= set(data)


@pytest.mark.parametrize("warmup, repeat", [(-1, 3), (0, 0)])
def test_bad_counts_are_rejected(warmup, repeat):
    with pytest.raises(ValueError, match="measure"):
        measure(lambda: None, HostClock(), warmup=warmup, repeat=repeat)


def test_host_clock_times_real_work():
    assert HostClock().time_ms(lambda: sum(range(10000))) > 0
