"""`nsync-bench ui` at the process level: a busy port is a failure, SIGTERM stops the server too."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_a_busy_port_exits_non_zero_with_the_reason(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = subprocess.run(["nsync-bench", "ui", "--port", str(port), "--tracking-uri",
                              f"sqlite:///{tmp_path / 'm.db'}"], env=ENV, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stdout + out.stderr
    text = " ".join((out.stdout + out.stderr).split())
    assert f"127.0.0.1:{port}" in text and "--port" in text and "http://" not in text


@pytest.mark.slow
def test_sigterm_stops_the_mlflow_server_too(tmp_path):
    port = _free_port()
    proc = subprocess.Popen(["nsync-bench", "ui", "--port", str(port), "--tracking-uri",
                             f"sqlite:///{tmp_path / 'm.db'}"], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not _answers(port):
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the UI never answered"
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)  # the ui process only, as a service manager would
        output = proc.communicate(timeout=60)[0]
        assert proc.returncode == 0, output
        deadline = time.monotonic() + 20
        while _answers(port):
            assert time.monotonic() < deadline, "the MLflow server outlived `nsync-bench ui`"
            time.sleep(0.5)
    finally:
        if proc.poll() is None:
            proc.kill()
