"""The toy world: a procedural image world, a small base model trained on it on a CPU, a probe network
as its metric extractors, and the positive control (docs/toy-world.md)."""
