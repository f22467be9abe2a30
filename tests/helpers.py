"""Helpers several test modules share (fixtures live in conftest.py): images on disk, a run's
regenerated evaluation batch, a method's assembled training, and a report store written directly with
MlflowClient through the project's tag schema."""

from __future__ import annotations

import numpy as np
from conftest import FAST
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from PIL import Image

from nsync_bench.config.recipes import resolve_config
from nsync_bench.paths import artifact_root
from nsync_bench.pipeline.generation import EvalPrompt, generate_batch, read_manifest
from nsync_bench.pipeline.runner import build_training
from nsync_bench.tracking import schema


def write_images(folder, n, seed, modes=("RGB",), sizes=((40, 40),)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        w, h = sizes[i % len(sizes)]
        array = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        image = Image.fromarray(array)
        mode = modes[i % len(modes)]
        if mode == "P":
            image = image.convert("P", palette=Image.Palette.ADAPTIVE)
        elif mode == "I;16":
            image = Image.fromarray(array[..., 0].astype(np.uint16) * 257)
        elif mode != "RGB":
            image = image.convert(mode)
        image.save(folder / f"{i:03d}.png")
    return folder


def assert_regenerates(pipe, run_dir, config, prompt_suffix):
    """The run's first evaluation batch, regenerated from its manifest, equals the saved PNGs exactly."""
    manifest = read_manifest(run_dir / "eval" / "images")[: config.eval.batch_size]
    assert manifest[0].prompt.endswith(prompt_suffix)
    prompts = [EvalPrompt(m.index, m.caption, m.prompt, m.seed, m.source) for m in manifest]
    for item, image in zip(manifest, generate_batch(pipe, prompts, config.eval, config.model.resolution)):
        with Image.open(run_dir / "eval" / "images" / item.file) as saved:
            assert np.array_equal(np.asarray(image), np.asarray(saved))


def training_for(method, data_root, tmp_path, overrides=(), seed=0, protocol="matched"):
    """The smoke profile's assembled training (data, components, method, trainer) for ``method``; nothing trained."""
    config = resolve_config(style="toy-pastel", method=method, seed=seed, profile="smoke", protocol=protocol,
                            overrides=[*FAST, *overrides])
    return build_training(config, data_root=data_root, checkpoint_dir=tmp_path / method / "ckpt")


# The params every run of a report store carries (as a run logs them).
BASE = {"run.style": "toy-pastel", "run.profile": "smoke", "run.protocol": "matched", "train.learning_rate": "0.0005",
        "train.max_steps": "30", "data_identity.train.images": "a" * 64}


class ReportStore:
    """An MLflow store of benchmark runs written directly (no training), for the report's tests."""

    def __init__(self, tmp_path):
        self.uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        self.client = MlflowClient(self.uri)
        self.experiment = self.client.create_experiment("cells", artifact_location=artifact_root(self.uri))
        self.clock = 1_000

    def add(self, method, seed, fid, *, params=None, status="FINISHED", run_key=None):
        """One run; later calls start later (the report keeps the latest run of a cell and seed)."""
        params = {**BASE, "run.method": method, "run.seed": str(seed), **(params or {})}
        coordinates = {"style": "toy-pastel", "method": method, "seed": str(seed), "profile": "smoke",
                       "protocol": "matched"}
        tags = {**schema.run_tags(coordinates, run_key or f"{method}-{seed}-{sorted(params.items())}"),
                **schema.kind_tag(schema.RUN_KIND),
                **schema.metric_tags("fid", direction="lower", implementation="fid|test"),
                **schema.metric_tags("csd", direction="higher", implementation="csd|test")}
        self.clock += 1_000
        run = self.client.create_run(self.experiment, start_time=self.clock, tags=tags)
        run_id = run.info.run_id
        for key, value in params.items():
            self.client.log_param(run_id, key, value)
        if status == "FINISHED":
            self.client.log_batch(run_id, metrics=[Metric("metrics/fid", fid, 0, 0),
                                                   Metric("metrics/csd", 0.5 + seed / 100, 0, 0)])
        self.client.set_terminated(run_id, status)
        return run_id
