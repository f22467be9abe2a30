"""The LDM baseline: the untrained base model, told the style's human name.

The released code's ``gen_generic_dataset.py`` run on the test captions renders them with plain
Stable Diffusion as ``"{caption} in the style of Claude Monet"`` (or "Van Gogh", "Studio Ghibli
animation"); the paper's teaser shows those images as its "LDM" column. Here that is a method that
trains nothing: its "token" is the style's ``display_name`` from its manifest, so the shared
evaluation template ``eval.prompt_template`` ("{caption} in the style of {token}") gives exactly
that prompt, and the run goes through the same evaluation, metrics, MLflow and report as any method.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from nsync_bench.methods.base import Method
from nsync_bench.models.diffusers_pipeline import build_pipeline

ADAPTER_FILE = "ldm.json"


class Ldm(Method):
    name = "ldm"  # trains nothing (its descriptor, nsync_bench.config.methods): the runner skips the trainer

    @property
    def token(self) -> str:
        return self.style.display_name

    def param_groups(self) -> list[dict[str, Any]]:
        return []

    def compute_gradients(self, batch: Any, micro_step: int) -> dict[str, float]:
        raise RuntimeError("method 'ldm' trains nothing; the runner must not call a trainer for it")

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        if state:
            raise ValueError(f"method 'ldm' has no trainable state; got keys {sorted(state)}")

    def save_adapter(self, directory: Path) -> Path:
        """No weights: a note of what the base model was prompted with (the run's only "adapter")."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / ADAPTER_FILE
        note = {"method": self.name, "trained": False, "base_model": self.components.source,
                "prompt_template": self.config.eval.prompt_template, "token": self.token,
                "example": self.evaluation_prompt("a house by a lake")}
        path.write_text(json.dumps(note, indent=2))
        return path

    def evaluation_pipeline(self) -> Any:
        return build_pipeline(self.components)
