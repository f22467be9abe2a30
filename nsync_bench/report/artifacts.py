"""What a report needs beyond run metrics: per-image scores, step histories, evaluation images.

Everything is read through MLflow (artifacts downloaded into the report's work folder), so a
report works against a remote tracking server as well as the local SQLite store.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from nsync_bench.report.runs_table import ReportData

log = logging.getLogger(__name__)

HISTORY_KEYS = ("train/loss", "grad/cos_pos_neg")


def _client(data: ReportData):
    from mlflow.tracking import MlflowClient

    return MlflowClient(data.tracking_uri)


def download(data: ReportData, run_id: str, artifact: str, dest: Path) -> Path | None:
    """Download one artifact of a run into ``dest/<run_id>/``; None (logged) when the run lacks it."""
    target = dest / run_id
    target.mkdir(parents=True, exist_ok=True)
    try:
        return Path(_client(data).download_artifacts(run_id, artifact, str(target)))
    except Exception as err:  # MlflowException, OSError: a missing artifact is not fatal to a report
        log.warning("run %s has no artifact %s (%s)", run_id, artifact, err)
        return None


def load_per_image(data: ReportData, dest: Path) -> pd.DataFrame:
    """Per-image CSD scores of every run: ``run_id, index, seed, file, source, prompt, csd``."""
    frames = []
    for run_id in data.runs["run_id"]:
        path = download(data, run_id, "eval/per_image_scores.csv", dest)
        if path is None:
            continue
        frame = pd.read_csv(path)
        frame = frame[pd.to_numeric(frame["csd"], errors="coerce").notna()]
        frame["run_id"] = run_id
        frames.append(frame.rename(columns={"seed": "image_seed"}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def load_histories(data: ReportData, keys: tuple[str, ...] = HISTORY_KEYS) -> pd.DataFrame:
    """Step metrics of every run: ``run_id, key, step, value``."""
    client = _client(data)
    rows: list[dict[str, Any]] = []
    for run_id in data.runs["run_id"]:
        for key in keys:
            rows.extend({"run_id": run_id, "key": key, "step": m.step, "value": m.value}
                        for m in client.get_metric_history(run_id, key))
    return pd.DataFrame(rows, columns=["run_id", "key", "step", "value"])


def load_manifest(data: ReportData, run_id: str, dest: Path) -> list[dict]:
    path = download(data, run_id, "eval/manifest.jsonl", dest)
    if path is None:
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def evaluation_image(data: ReportData, run_id: str, file: str, dest: Path) -> Path | None:
    return download(data, run_id, f"eval/images/{file}", dest)
