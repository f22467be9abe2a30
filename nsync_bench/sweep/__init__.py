"""Sweeps: the styles x methods x seeds matrix, where its tasks run, per-run locks, and dry-run plans."""
