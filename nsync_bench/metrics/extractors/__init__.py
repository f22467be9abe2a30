"""Feature extractors behind one interface (nsync_bench.metrics.extractors.base)."""
