"""The "MLflow at scale" setup of docs/scale.md, for real: PostgreSQL + ``mlflow server`` + a 2-worker sweep.

Run by ``nox -s server`` (which installs ``.[dev,server]`` first). It starts a throwaway PostgreSQL
cluster (Debian's ``postgresql`` package) on 127.0.0.1, an MLflow tracking server on it with a
separate artifact root, runs a smoke sweep with two workers and its report against the server,
checks what landed where, and stops everything it started, whatever happens. Times each phase.

Usage: python .ci/server_stack.py WORKDIR
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

# Short runs: this checks the tracking stack, not the methods.
SWEEP = ["--profile", "smoke", "--styles", "toy-pastel", "--methods", "ti,nsync", "--seeds", "0",
         "--max-parallel", "2", "--experiment", "server-job", "--set", "train.max_steps=10",
         "--set", "eval.max_prompts=4", "--set", "eval.num_inference_steps=5"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pg_binary(name: str) -> str:
    """Debian keeps the server tools in /usr/lib/postgresql/<major>/bin, off PATH."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    path = found[-1] if found else shutil.which(name)
    if not path:
        sys.exit(f"{name} not found: install PostgreSQL (Debian: apt-get install postgresql).")
    return path


def as_db_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the package's ``postgres`` user then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def wait_for(check, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not come up within {timeout:.0f} s")
        time.sleep(0.5)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - a local URL we built
            return True
    except OSError:
        return False


def main(workdir: Path) -> None:
    started = time.monotonic()
    timings: dict[str, float] = {}
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    # The cluster lives in /tmp: the database user must reach it, and a checkout under /root is closed to it.
    cluster = Path(tempfile.mkdtemp(prefix="nsync-bench-pg-"))
    password = secrets.token_hex(12)
    pwfile = cluster / "pw"
    pwfile.write_text(password)
    if os.geteuid() == 0:
        shutil.chown(cluster, "postgres")
        shutil.chown(pwfile, "postgres")
    data = cluster / "data"
    pg_port, mlflow_port = free_port(), free_port()
    pg_ctl = as_db_user([pg_binary("pg_ctl"), "-D", str(data), "-w", "-t", "60"])
    mlflow = None
    pg_started = False
    try:
        subprocess.run(as_db_user([pg_binary("initdb"), "-D", str(data), "-U", "mlflow", f"--pwfile={pwfile}",
                                   "--auth=scram-sha-256", "--encoding=UTF8", "--no-instructions"]),
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run([*pg_ctl, "-l", str(cluster / "server.log"), "-o",
                        f"-c listen_addresses=127.0.0.1 -p {pg_port} -c unix_socket_directories={cluster}", "start"],
                       check=True)
        pg_started = True
        env_pg = {**os.environ, "PGPASSWORD": password}
        subprocess.run([pg_binary("createdb"), "-h", "127.0.0.1", "-p", str(pg_port), "-U", "mlflow", "mlflow"],
                       check=True, env=env_pg)
        timings["postgresql up"] = time.monotonic() - started

        # The driver is explicit: SQLAlchemy 2.1 defaults postgresql:// to psycopg 3, 2.0 to psycopg2.
        store = f"postgresql+psycopg2://mlflow:{password}@127.0.0.1:{pg_port}/mlflow"
        artifacts = workdir / "mlartifacts"
        uri = f"http://127.0.0.1:{mlflow_port}"
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        log = (workdir / "mlflow-server.log").open("w")
        mlflow = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store,
                                   "--artifacts-destination", str(artifacts), "--host", "127.0.0.1",
                                   "--port", str(mlflow_port), "--workers", "2"], env=env, stdout=log, stderr=log)
        wait_for(lambda: mlflow.poll() is not None or http_ok(f"{uri}/health"), "mlflow server", 300)
        if mlflow.poll() is not None:
            raise RuntimeError(f"mlflow server exited: see {workdir / 'mlflow-server.log'}")
        timings["mlflow server up"] = time.monotonic() - started

        run_env = {**env, "NSYNC_BENCH_DATA_ROOT": str(workdir / "data"),
                   "NSYNC_BENCH_RUNS_DIR": str(workdir / "runs"),
                   "NSYNC_BENCH_CACHE_DIR": str(workdir / "cache"), "MLFLOW_TRACKING_URI": uri}
        cli = [sys.executable, "-m", "nsync_bench"]
        phase = time.monotonic()
        subprocess.run([*cli, "sweep", *SWEEP, "--tracking-uri", uri], check=True, env=run_env)
        timings["sweep (2 runs, 2 workers)"] = time.monotonic() - phase
        phase = time.monotonic()
        report = workdir / "report"
        subprocess.run([*cli, "report", "--experiment", "server-job", "--tracking-uri", uri, "--out", str(report)],
                       check=True, env=run_env)
        timings["report"] = time.monotonic() - phase
        check(uri, report, artifacts)
    finally:
        if mlflow is not None:
            mlflow.terminate()
            try:
                mlflow.wait(timeout=30)
            except subprocess.TimeoutExpired:
                mlflow.kill()
        if pg_started:
            subprocess.run([*pg_ctl, "-m", "fast", "stop"], check=False)
        shutil.rmtree(cluster, ignore_errors=True)
    timings["total"] = time.monotonic() - started
    print(json.dumps({k: round(v, 1) for k, v in timings.items()}, indent=2))


def check(uri: str, report: Path, artifacts: Path) -> None:
    """The runs FINISHED in PostgreSQL with their datasets; artifacts in the separate root; the report."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("server-job")
    assert experiment.tags.get("mlflow.experimentKind") == "custom_model_development"
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.`nsync_bench.kind` = 'run'")
    assert len(runs) == 2, [r.info.run_name for r in runs]
    for found in runs:
        assert found.info.status == "FINISHED", (found.info.run_name, found.info.status)
        contexts = {t.value for i in found.inputs.dataset_inputs for t in i.tags if t.key == "mlflow.data.context"}
        expected = {"training", "evaluation"} | ({"negatives"} if found.data.tags["method"] == "nsync" else set())
        assert contexts == expected, (found.info.run_name, contexts)
        assert {"metrics/fid", "metrics/csd"} <= set(found.data.metrics)
    models = client.search_logged_models([experiment.experiment_id])
    assert len(models) == 2 and all({m.key for m in model.metrics} >= {"metrics/fid"} for model in models)
    adapters = list(artifacts.rglob("adapter/README.md"))
    assert len(adapters) >= 2, f"adapters not in the artifact root {artifacts}"
    assert (report / "report.md").is_file() and (report / "index.html").is_file()
    print(f"ok: 2 runs FINISHED in PostgreSQL via {uri}; artifacts in {artifacts}; report in {report}")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
