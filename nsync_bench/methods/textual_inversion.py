"""Textual Inversion (Gal et al. 2022): learn one token embedding v for the style token S*.

    v* = argmin_v E || eps - eps_theta(z_t, t, c_theta(y[S* -> v])) ||^2

Only the placeholder's embedding trains. By default it is its own parameter, substituted where
the token occurs (methods.embedding), so every other row of the text encoder's matrix stays
bit-identical by construction, even under AdamW's decoupled weight decay.

``ti.decay_whole_vocabulary = true`` reproduces the released code instead: the optimizer holds the
whole matrix, other rows get zero gradient but are decayed by AdamW; evaluation (like the released
inference script) loads the learned row into an undecayed encoder.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from nsync_bench.errors import ConfigError
from nsync_bench.methods.base import Method
from nsync_bench.methods.embedding import LearnedRowEmbedding
from nsync_bench.models.diffusers_pipeline import build_pipeline

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
        base = text_encoder.get_input_embeddings()
        with torch.no_grad():
            base.weight[self.placeholder_id] = base.weight[init_ids[0]].clone()
        text_encoder.requires_grad_(False)
        self.base_embedding = base
        self.original_weight = base.weight.detach().clone()
        self.keep_rows = torch.ones(base.weight.shape[0], dtype=torch.bool, device=base.weight.device)
        self.keep_rows[self.placeholder_id] = False
        # 3. What trains: the placeholder row alone, or (released code) the whole matrix.
        if ti.decay_whole_vocabulary:
            base.weight.requires_grad_(True)
            self.learned: LearnedRowEmbedding | None = None
        else:
            self.learned = LearnedRowEmbedding(base, self.placeholder_id, base.weight[self.placeholder_id])
            self.learned.to(base.weight.device)
            text_encoder.set_input_embeddings(self.learned)

    @property
    def token(self) -> str:
        return self.config.ti.placeholder_token

    def _trainable(self) -> torch.Tensor:
        return self.learned.row if self.learned is not None else self.base_embedding.weight

    def param_groups(self) -> list[dict[str, Any]]:
        return [{"params": [self._trainable()], "weight_decay": self.config.train.weight_decay}]

    def rule_parameters(self) -> list[torch.Tensor]:
        return [self._trainable()]

    def rule_vectors(self, gradients: list[torch.Tensor]) -> list[torch.Tensor]:
        """The style token's row: the vector NSYNC's rule acts on (as in the released code)."""
        gradient = gradients[0]  # the learned row (1, d), a branch's leaf row (1, d), or the matrix
        return [gradient[0] if gradient.shape[0] == 1 else gradient[self.placeholder_id]]

    def add_to_gradients(self, vectors: list[torch.Tensor]) -> None:
        parameter = self._trainable()
        if parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
        row = 0 if self.learned is not None else self.placeholder_id
        parameter.grad[row] += vectors[0].to(parameter.grad.dtype)

    @property
    def supports_branch_parameters(self) -> bool:
        return True

    @contextlib.contextmanager
    def branch_parameters(self, sizes: list[int]) -> Iterator[list[list[torch.Tensor]]]:
        """Each branch's samples see their own leaf copy of the placeholder row. In the released
        code's whole-matrix mode a temporary learned-row layer does the same (the other rows get no
        gradient there either); the rule's result is then written into the matrix's row."""
        text_encoder = self.components.text_encoder
        layer = self.learned
        if layer is None:
            base = self.base_embedding
            layer = LearnedRowEmbedding(base, self.placeholder_id, base.weight[self.placeholder_id])
            text_encoder.set_input_embeddings(layer)
        rows = [layer.row.detach().clone().requires_grad_(True) for _ in sizes]
        layer.branch_rows, layer.branch_sizes = rows, list(sizes)
        try:
            yield [[row] for row in rows]
        finally:
            layer.branch_rows = layer.branch_sizes = None
            if self.learned is None:
                text_encoder.set_input_embeddings(self.base_embedding)

    def before_optimizer_step(self) -> None:
        if self.learned is None:  # released code: only the placeholder row gets a gradient
            grad = self.base_embedding.weight.grad
            if grad is not None:
                grad[self.keep_rows] = 0

    def learned_embedding(self) -> torch.Tensor:
        if self.learned is not None:
            return self.learned.row.detach().float().cpu()
        return self.base_embedding.weight[self.placeholder_id : self.placeholder_id + 1].detach().float().cpu()

    def trainable_state(self) -> dict[str, torch.Tensor]:
        if self.learned is None:  # every row moves
            return {"embedding_matrix": self.base_embedding.weight.detach().cpu().clone()}
        return {"placeholder_row": self.learned_embedding().clone()}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            if "embedding_matrix" in state:
                self.base_embedding.weight.copy_(state["embedding_matrix"].to(self.base_embedding.weight))
            else:
                self._trainable().copy_(state["placeholder_row"].to(self._trainable()))

    def save_adapter(self, directory: Path) -> Path:
        """``{token: tensor[1, d]}`` safetensors, the format ``load_textual_inversion`` reads."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / ADAPTER_FILE
        save_file({self.token: self.learned_embedding().contiguous()}, str(path))
        return path

    def evaluation_pipeline(self) -> Any:
        # The learned row in the original (undecayed) matrix: exactly what load_textual_inversion builds.
        with torch.no_grad():
            weight = self.original_weight.clone()
            weight[self.placeholder_id] = self.learned_embedding()[0].to(weight)
            self.base_embedding.weight.copy_(weight)
        self.components.text_encoder.set_input_embeddings(self.base_embedding)
        return build_pipeline(self.components)
