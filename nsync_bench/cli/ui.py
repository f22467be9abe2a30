"""``nsync-bench ui``: the MLflow UI on the same store the runs log to."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Annotated

import typer

from nsync_bench.cli.app import app, console
from nsync_bench.cli.options import TrackingUriOption


def ui_command(uri: str, host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port)]


def ui_url(host: str, port: int, experiment_id: str | None = None) -> str:
    """The UI's address with the "Model training" view selected (runs table, not the GenAI overview)."""
    page = f"experiments/{experiment_id}" if experiment_id else "experiments"
    return f"http://{host}:{port}/#/{page}?workflowType=machine_learning"


@app.command()
def ui(
    tracking_uri: TrackingUriOption = None,
    host: Annotated[str, typer.Option(help="Address to bind; 127.0.0.1 keeps it local.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port (1-65535).")] = 5000,
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
    _check_port_free(host, port)
    # Its own process group, so that stopping the UI stops the server's workers too.
    proc = subprocess.Popen(command, env=env, start_new_session=True)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        if _wait_until_serving(proc, host, port):
            # MLflow 3.17's UI opens experiments on its GenAI overview unless the browser has chosen "Model
            # training" (a per-browser switch, not a server setting); this link chooses it.
            console.print(f"MLflow UI for {uri} at [bold]{ui_url(host, port)}[/] (Ctrl-C to stop)")
        code = proc.wait()
    except KeyboardInterrupt:
        code = 0
    finally:
        _stop(proc)
        signal.signal(signal.SIGTERM, previous)
    if code != 0:
        raise NsyncBenchError(f"the MLflow UI server exited with status {code} (see its output above); nothing is "
                              f"served at http://{host}:{port}. Check --tracking-uri {uri!r} and --port.")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _check_port_free(host: str, port: int) -> None:
    from nsync_bench.errors import NsyncBenchError

    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError as err:
            raise NsyncBenchError(f"cannot serve the UI on {host}:{port}: {err.strerror or err} (another program, "
                                  "perhaps an earlier `nsync-bench ui`, uses that port). Pass a free one, e.g. "
                                  f"--port {port + 1}.") from None


def _wait_until_serving(proc: subprocess.Popen, host: str, port: int, timeout: float = 120.0) -> bool:
    """True once the server accepts connections; False if it exited first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
            return True
        time.sleep(0.3)
    return proc.poll() is None


def _stop(proc: subprocess.Popen) -> None:
    """End the server and every worker it started (its process group)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    with contextlib.suppress(ProcessLookupError, PermissionError):  # workers that outlived the leader
        os.killpg(proc.pid, signal.SIGKILL)
