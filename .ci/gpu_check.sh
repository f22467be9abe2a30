#!/usr/bin/env bash
# The GPU check on its target machine (docs/scale.md, "The GPU check"): the machine's own torch stack plus
# wheelhouse/ (built elsewhere by `nox -s wheelhouse`, at most 64 MiB), no index, no network, then the check,
# which prints its JSON (also written to $OUT/gpu-check.json when OUT is set). Its own estimate: under 5 min.
set -euo pipefail
cd "$(dirname "$0")/.."

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false PIP_DISABLE_PIP_VERSION_CHECK=1
export NSYNC_BENCH_CACHE_DIR="${NSYNC_BENCH_CACHE_DIR:-${TMPDIR:-/tmp}/nsync-gpu-check-cache}"
venv="${TMPDIR:-/tmp}/nsync-gpu-check-venv"

# The target's packages stay as they are (system site packages); only the wheelhouse is added, without deps.
python3 -m venv --system-site-packages "$venv"
"$venv/bin/python" -m pip install --quiet --no-index --no-deps wheelhouse/*.whl
out="${OUT:-$PWD}/gpu-check.json"
timeout 600 "$venv/bin/nsync-bench" bench --profile "${1:-sd15-arch}" --device cuda --json > "$out"
cat "$out"
