"""Performance: the shipped benchmarks (`nsync-bench bench`) and their timing helpers.

The GPU and scale checks, which check correctness at full size, are in ``nsync_bench.checks``."""
