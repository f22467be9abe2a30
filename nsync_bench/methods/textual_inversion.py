"""Textual Inversion (Gal et al. 2022): learn one token embedding v for the style token S*.

    v* = argmin_v E || eps - eps_theta(z_t, t, c_theta(y[S* -> v])) ||^2

Only the placeholder row of the text encoder's token-embedding matrix trains. The optimizer
sees the whole matrix (as in diffusers' example and the released code); after every step all
other rows are restored from a copy, so they stay bit-identical even under AdamW's decoupled
weight decay. ``ti.decay_whole_vocabulary = true`` reproduces the released code instead: other
rows get zero gradient but are decayed, and evaluation (like the released inference script)
loads the learned row into an undecayed encoder.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from nsync_bench.errors import ConfigError
from nsync_bench.methods.base import Method
from nsync_bench.models.pipeline import build_pipeline

log = logging.getLogger(__name__)

ADAPTER_FILE = "learned_embeds.safetensors"


class TextualInversion(Method):
    name = "ti"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        ti = self.config.ti
        tokenizer, text_encoder = self.components.tokenizer, self.components.text_encoder
        # 1. Add the placeholder token; it must be new, and the initializer a single token.
        if tokenizer.add_tokens(ti.placeholder_token) != 1:
            raise ConfigError(
                f"ti.placeholder_token {ti.placeholder_token!r} is already in the tokenizer; pick a new string, "
                "e.g. --set ti.placeholder_token='<my-style>'."
            )
        init_ids = tokenizer.encode(ti.initializer_token, add_special_tokens=False)
        if len(init_ids) != 1:
            raise ConfigError(
                f"ti.initializer_token {ti.initializer_token!r} is {len(init_ids)} tokens; it must be one "
                "token (e.g. painting, illustration, animation)."
            )
        self.placeholder_id = tokenizer.convert_tokens_to_ids(ti.placeholder_token)
        # 2. Grow the embedding matrix and start the new row from the initializer's embedding.
        # mean_resizing=False: the new row is overwritten below, and the default would draw from
        # torch's global RNG (a hidden dependency of the run on unrelated state).
        text_encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        embedding = text_encoder.get_input_embeddings()
        with torch.no_grad():
            embedding.weight[self.placeholder_id] = embedding.weight[init_ids[0]].clone()
        # 3. Freeze everything but the embedding matrix; remember the original rows.
        text_encoder.requires_grad_(False)
        embedding.weight.requires_grad_(True)
        self.embedding = embedding
        self.original_weight = embedding.weight.detach().clone()
        self.keep_rows = torch.ones(embedding.weight.shape[0], dtype=torch.bool, device=embedding.weight.device)
        self.keep_rows[self.placeholder_id] = False

    @property
    def token(self) -> str:
        return self.config.ti.placeholder_token

    def param_groups(self) -> list[dict[str, Any]]:
        return [{"params": [self.embedding.weight], "weight_decay": self.config.train.weight_decay}]

    def rule_parameters(self) -> list[torch.Tensor]:
        return [self.embedding.weight]

    def rule_vectors(self, gradients: list[torch.Tensor]) -> list[torch.Tensor]:
        """The style token's row: the vector NSYNC's rule acts on (as in the released code)."""
        return [gradients[0][self.placeholder_id]]

    def add_to_gradients(self, vectors: list[torch.Tensor]) -> None:
        weight = self.embedding.weight
        if weight.grad is None:
            weight.grad = torch.zeros_like(weight)
        weight.grad[self.placeholder_id] += vectors[0].to(weight.grad.dtype)

    def before_optimizer_step(self) -> None:
        # Only the placeholder row learns: the rows of the caption's words get gradients too.
        grad = self.embedding.weight.grad
        if grad is not None:
            grad[self.keep_rows] = 0

    def after_optimizer_step(self) -> None:
        if self.config.ti.decay_whole_vocabulary:
            return
        with torch.no_grad():
            self.embedding.weight[self.keep_rows] = self.original_weight[self.keep_rows]

    def learned_embedding(self) -> torch.Tensor:
        return self.embedding.weight[self.placeholder_id : self.placeholder_id + 1].detach().float().cpu()

    def trainable_state(self) -> dict[str, torch.Tensor]:
        if self.config.ti.decay_whole_vocabulary:  # every row moves
            return {"embedding_matrix": self.embedding.weight.detach().cpu().clone()}
        return {"placeholder_row": self.learned_embedding().clone()}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            weight = self.embedding.weight
            if "embedding_matrix" in state:
                weight.copy_(state["embedding_matrix"].to(weight))
            else:
                weight[self.placeholder_id : self.placeholder_id + 1] = state["placeholder_row"].to(weight)

    def save_adapter(self, directory: Path) -> Path:
        """``{token: tensor[1, d]}`` safetensors, the format ``load_textual_inversion`` reads."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / ADAPTER_FILE
        save_file({self.token: self.learned_embedding().contiguous()}, str(path))
        return path

    def evaluation_pipeline(self) -> Any:
        # The learned row in the original (undecayed) matrix: what load_textual_inversion gives.
        with torch.no_grad():
            self.embedding.weight[self.keep_rows] = self.original_weight[self.keep_rows]
        return build_pipeline(self.components)
