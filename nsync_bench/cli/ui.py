"""``nsync-bench ui``: the MLflow UI on the same store the runs log to."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from typing import Annotated

import typer

from nsync_bench.cli import app, console, teaching_errors
from nsync_bench.cli.options import TrackingUriOption


def ui_command(uri: str, host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port)]


def ui_url(host: str, port: int, experiment_id: str | None = None) -> str:
    """The UI's address with the "Model training" view selected (runs table, not the GenAI overview)."""
    page = f"experiments/{experiment_id}" if experiment_id else "experiments"
    return f"http://{host}:{port}/#/{page}?workflowType=machine_learning"


@app.command()
@teaching_errors
def ui(
    tracking_uri: TrackingUriOption = None,
    host: Annotated[str, typer.Option(help="Address to bind; 127.0.0.1 keeps it local.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 5000,
) -> None:
    """Start the MLflow UI on 127.0.0.1 against the runs' store (Ctrl-C stops it)."""
    from nsync_bench.errors import NsyncBenchError
    from nsync_bench.paths import artifact_root
    from nsync_bench.paths import tracking_uri as default_uri

    uri = default_uri(tracking_uri)
    if uri.startswith(("http://", "https://")):
        raise NsyncBenchError(f"{uri} is already a tracking server: open it in a browser instead.")
    command = ui_command(uri, host, port)
    root = artifact_root(uri)
    if root:
        command += ["--default-artifact-root", root]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # else ~15 worker processes
    # MLflow 3.17's UI opens experiments on its GenAI overview unless the browser has chosen "Model
    # training" (a per-browser switch, not a server setting); this link chooses it.
    console.print(f"MLflow UI for {uri} at [bold]{ui_url(host, port)}[/] (Ctrl-C to stop)")
    with contextlib.suppress(KeyboardInterrupt):
        subprocess.run(command, env=env, check=False)
