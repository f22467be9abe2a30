"""Correctness checks of whole pipelines at full size: the GPU check and the random-weight scale check (`nox -s
scale`). They time what they run with the benchmarks' helpers (``perf/``)."""
