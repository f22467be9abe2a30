"""Performance: the shipped benchmarks (`nsync-bench bench`), the GPU check and the full-size scale check."""
