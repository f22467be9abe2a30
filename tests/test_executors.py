"""The sweep executors share one interface (nsync_bench.sweep.executors.Executor)."""

from __future__ import annotations

import inspect

from nsync_bench.sweep.executors import (
    Executor,
    InProcessExecutor,
    LocalPoolExecutor,
    SlurmExecutor,
    SlurmSettings,
    make_executor,
)


class _Job:
    """Stands in for matrix.PrepareStyle: a callable with a style."""

    style = "toy-pastel"

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        return self.style


def test_every_executor_has_prepare_and_run_with_the_protocols_parameters():
    for name in ("prepare", "run"):
        expected = list(inspect.signature(getattr(Executor, name)).parameters)
        for cls in (InProcessExecutor, LocalPoolExecutor, SlurmExecutor):
            assert list(inspect.signature(getattr(cls, name)).parameters) == expected, (cls, name)


def test_local_executors_prepare_a_style_once_in_this_process():
    for executor in (InProcessExecutor(), LocalPoolExecutor(2)):
        job = _Job()
        assert executor.prepare([job]) == {}
        assert job.calls == 1


def test_make_executor_picks_the_executor():
    assert isinstance(make_executor("local"), InProcessExecutor)
    assert isinstance(make_executor("local", max_parallel=2), LocalPoolExecutor)
    assert isinstance(make_executor("slurm", slurm=SlurmSettings(cluster="local")), SlurmExecutor)
