"""The benchmarks' one timing loop: warm-up calls untimed, each repeat timed, CUDA synchronised around each."""

import pytest
import torch

from nsync_bench.perf import timing


class FakeClock:
    """perf_counter that advances one second per read; records the events it sees."""

    def __init__(self, events):
        self.now, self.events = 0.0, events

    def __call__(self):
        self.events.append("clock")
        self.now += 1.0
        return self.now


@pytest.fixture
def events(monkeypatch):
    events = []
    monkeypatch.setattr(timing.time, "perf_counter", FakeClock(events))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: events.append("sync"))
    return events


def test_warmup_calls_are_not_timed_and_repeats_are(events):
    calls = []

    def work():
        calls.append(events.count("clock"))  # how many clock reads happened before this call
        events.append("work")

    times = timing.time_calls(work, warmup=2, repeats=3, device="cpu")
    assert calls == [0, 0, 1, 3, 5]  # the warm-up ran before any clock read; each repeat after one
    assert times == [1.0, 1.0, 1.0]  # one clock step between the reads around each timed call
    assert events == ["work", "work"] + ["clock", "work", "clock"] * 3  # no synchronisation off CUDA


def test_cuda_devices_are_synchronised_around_each_timed_call(events):
    times = timing.time_calls(lambda: events.append("work"), warmup=1, repeats=2, device="cuda:7")
    assert times == [1.0, 1.0]
    assert events == ["work"] + ["sync", "clock", "work", "sync", "clock"] * 2


def test_no_repeats_times_nothing(events):
    assert timing.time_calls(lambda: events.append("work"), warmup=1, repeats=0, device="cuda") == []
    assert events == ["work"]


def test_peak_memory(monkeypatch):
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda *a, **k: 3 * 2**20)
    resets = []
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda *a, **k: resets.append(True))
    assert timing.peak_memory_mb("cuda:0") == 3.0
    assert timing.peak_memory_mb("cuda", cpu_rss=False) == 3.0
    assert timing.peak_memory_mb("cpu", cpu_rss=False) is None
    assert timing.peak_memory_mb("cpu") > 0  # the process's peak RSS
    timing.reset_peak_memory("cpu")
    timing.reset_peak_memory("cuda")
    assert resets == [True]


def test_startup_bench_warms_up_once_and_uses_a_fresh_experiment_per_run(monkeypatch):
    from nsync_bench.perf import startup

    commands = []
    monkeypatch.setattr(startup.subprocess, "run", lambda argv, env, **_: commands.append(
        (argv[-1], env.get("NSYNC_BENCH_RUNS_DIR", "").rsplit("/", 1)[-1])))
    result = startup.bench_startup(repeats=2)
    # One warm-up of each, then import and run alternate (load from other jobs hits both alike).
    assert [c[0] for c in commands] == [startup.BASELINE, "startup-0", startup.BASELINE, "startup-1",
                                        startup.BASELINE, "startup-2"]
    assert [c[1] for c in commands[1::2]] == ["runs0", "runs1", "runs2"]
    assert result["repeats"] == 2 and result["run_s"] > 0 and result["ratio"] > 0
    assert result["phases_s"]["total"] == result["run_s"] and "load" in result
