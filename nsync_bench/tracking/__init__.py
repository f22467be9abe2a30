"""Experiment tracking: the MLflow tracker, what MLflow's UI reads from a run, and provenance."""
