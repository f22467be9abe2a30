"""What MLflow's own UI reads from a run: experiment kind, dataset inputs, source, git, description.

MLflow 3 opens an experiment on its GenAI overview unless the experiment is tagged as model
training (``mlflow.experimentKind``); its runs table fills the Dataset column from the run's
dataset inputs and the Source column from ``mlflow.source.*`` tags. System metrics come from
MLflow's own monitor (psutil; nvidia-ml-py for GPUs).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import logging
import os
import shlex
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
# One of the kinds the MLflow 3 UI maps to its classic ML workflow (runs table first), the
# others being genai_development, finetuning, regression, ...
EXPERIMENT_KIND = "custom_model_development"
DATASET_CONTEXTS = ("training", "evaluation", "negatives")
_DIGEST_MAX = 36  # MLflow's datasets.digest column is VARCHAR(36); PostgreSQL enforces it
SYSTEM_METRICS_ENV = "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING"  # MLflow's own switch, honoured here too

DataIdentity = Mapping[str, Mapping[str, str]]  # {context: {"name", "source", "digest"}}


def log_dataset_inputs(client: Any, run_id: str, identity: DataIdentity) -> None:
    """Log each dataset of ``identity`` as an MLflow input of ``run_id`` with its context tag.

    The digest is stored exactly as given (an ``mlflow.entities.Dataset`` with the digest set
    explicitly), so it equals the run key's data identity. Logging the same inputs again (a resumed
    run) adds nothing: MLflow deduplicates datasets by (experiment, name, digest).
    """
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    inputs = []
    for context, item in identity.items():
        if context not in DATASET_CONTEXTS:
            raise ValueError(f"dataset context {context!r}: expected one of {DATASET_CONTEXTS}")
        digest = str(item["digest"])
        if not digest or len(digest) > _DIGEST_MAX:
            raise ValueError(f"dataset digest {digest!r} for {context}: MLflow stores 1 to {_DIGEST_MAX} characters")
        profile = {k: v for k, v in item.items() if k not in ("name", "source", "digest")}
        dataset = Dataset(name=str(item["name"]), digest=digest, source_type="local",
                          source=json.dumps({"uri": str(item["source"])}),
                          profile=json.dumps(profile) if profile else None)
        inputs.append(DatasetInput(dataset, tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)]))
    if inputs:
        try:
            client.log_inputs(run_id, datasets=inputs)
        except Exception as err:  # two workers of a sweep logging the same new dataset: the loser retries once
            if "UNIQUE constraint failed: datasets" not in str(err):
                raise
            client.log_inputs(run_id, datasets=inputs)  # the dataset exists now: MLflow links it


def log_adapter_model(client: Any, experiment_id: str, run_id: str, name: str, metrics: dict[str, float],
                      dataset: Mapping[str, str] | None, tags: dict[str, str]) -> str | None:
    """The run's adapter as an MLflow 3 logged model carrying the final metrics (on the evaluation set).

    MLflow 3.17's runs table opens with fixed columns, but its Models tab shows each model's metrics
    as columns, grouped by dataset, and the runs table's Models column links to it.
    """
    import time

    if not hasattr(client, "create_logged_model"):  # MLflow 2 has no logged models
        return None
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus, Metric

    model = client.create_logged_model(experiment_id, name=name, source_run_id=run_id, tags=tags,
                                       model_type="adapter")
    stamp = int(time.time() * 1000)
    where = {"dataset_name": dataset["name"], "dataset_digest": dataset["digest"]} if dataset else {}
    client.log_batch(run_id, metrics=[Metric(k, float(v), stamp, 0, model_id=model.model_id, run_id=run_id, **where)
                                      for k, v in sorted(metrics.items()) if k.startswith("metrics/")])
    client.log_outputs(run_id, [LoggedModelOutput(model.model_id, 0)])
    client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    return model.model_id


def reproduce_command(config: Any, experiment: str | None = None) -> str:
    """The ``nsync-bench run`` command line that resolves to exactly ``config`` (same run key)."""
    from nsync_bench.config.recipes import resolve_config

    spec = config.run
    base = resolve_config(style=spec.style, method=spec.method, seed=spec.seed, profile=spec.profile,
                          protocol=spec.protocol).flat()
    args = ["nsync-bench", "run", "--style", spec.style, "--method", spec.method, "--seed", str(spec.seed),
            "--profile", spec.profile, "--protocol", spec.protocol]
    for key, value in config.flat().items():
        if key.startswith("run.") or base.get(key) == value:
            continue
        args += ["--set", f"{key}={_toml_value(value)}"]
    if experiment:
        args += ["--experiment", experiment]
    return shlex.join(args)


def _toml_value(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, str):
        # Quoted only where --set would read it as something else (a number, a boolean, none).
        return json.dumps(value) if value.lower() in {"none", "null"} or _parses_as_toml(value) else value
    return json.dumps(value)  # numbers, booleans and lists read back the same as TOML values


def _parses_as_toml(text: str) -> bool:
    from nsync_bench.compat import tomllib

    try:
        tomllib.loads(f"v = {text}")
    except tomllib.TOMLDecodeError:
        return False
    return True


# MLflow's reserved tag names (mlflow.utils.mlflow_tags; a test checks they still match). Spelled out
# here because importing that module imports all of MLflow, which a run leaves to its helper process.
MLFLOW_SOURCE_NAME = "mlflow.source.name"
MLFLOW_SOURCE_TYPE = "mlflow.source.type"
MLFLOW_GIT_COMMIT = "mlflow.source.git.commit"
MLFLOW_RUN_NOTE = "mlflow.note.content"


def source_tags(git_sha: str, command: str) -> dict[str, str]:
    """The tags MLflow's UI reads for Source, git commit, user and the run description."""
    tags = {MLFLOW_SOURCE_NAME: "nsync-bench", MLFLOW_SOURCE_TYPE: "LOCAL",
            MLFLOW_RUN_NOTE: f"Reproduce this run:\n\n```\n{command}\n```\n"}
    if git_sha not in ("", "unknown"):
        tags[MLFLOW_GIT_COMMIT] = git_sha.removesuffix("+dirty")
        remote = _git_remote()
        if remote:
            tags["mlflow.source.git.repoURL"] = remote
    with contextlib.suppress(KeyError, OSError):  # no passwd entry (containers)
        tags["mlflow.user"] = getpass.getuser()
    return tags


def _git_remote() -> str | None:
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "remote", "get-url", "origin"], cwd=root, capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def system_metrics_enabled(profile: str, requested: bool | None) -> bool:
    """On for real profiles, off for smoke (seconds-long runs); MLflow's env switch or the option wins."""
    if requested is not None:
        return requested
    env = os.environ.get(SYSTEM_METRICS_ENV, "").strip().lower()
    if env in ("true", "1", "false", "0"):
        return env in ("true", "1")
    return profile != "smoke"


def start_system_metrics(run_id: str, tracking_uri: str, resume: bool) -> Any | None:
    """MLflow's system-metrics monitor for ``run_id`` (CPU, RAM, disk, network; GPU with nvidia-ml-py)."""
    try:
        import psutil  # noqa: F401 - MLflow's monitor needs it
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
    except ImportError as err:
        log.warning("system metrics are off: %s. Install them with `pip install \"nsync-bench[system-metrics]\"`.",
                    err)
        return None
    monitor = SystemMetricsMonitor(run_id, resume_logging=resume, tracking_uri=tracking_uri)
    monitor.start()
    return monitor


__all__ = ["DATASET_CONTEXTS", "EXPERIMENT_KIND", "EXPERIMENT_KIND_TAG", "log_adapter_model", "log_dataset_inputs",
           "reproduce_command", "source_tags", "start_system_metrics",
           "system_metrics_enabled"]
