"""LoRA (Hu et al. 2021) on the UNet's attention projections, through peft.

Each targeted linear map W gets a trainable low-rank update: W x + (alpha / r) B A x, with B
initialised to zero so training starts from the base model exactly. Defaults (rank 4,
alpha = rank, Gaussian init of A, to_q/to_k/to_v/to_out.0) follow diffusers'
``train_text_to_image_lora.py``. The adapter is saved in diffusers' LoRA format
(``pipe.load_lora_weights(dir)`` reproduces the run's own evaluation images).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nsync_bench import seeding
from nsync_bench.methods.base import Method
from nsync_bench.models.diffusers_pipeline import build_pipeline
from nsync_bench.training.diffusion import encode_prompts

ADAPTER_FILE = "pytorch_lora_weights.safetensors"


class Lora(Method):
    name = "lora"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from peft import LoraConfig

        lora = self.config.lora
        unet = self.components.unet
        unet.requires_grad_(False)
        config = LoraConfig(
            r=lora.rank,
            lora_alpha=lora.alpha,  # type: ignore[arg-type]  # peft annotates int; a float alpha works (alpha / r)
            lora_dropout=lora.dropout,
            init_lora_weights="gaussian" if lora.init == "gaussian" else True,
            target_modules=list(lora.target_modules),
        )
        # peft draws A's init from torch's global RNG: seed it from the run's own stream, so LoRA
        # and NSYNC-LoRA with the same seed start from the same adapter, whatever ran before.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seeding.derive_seed(self.seed, seeding.LORA_INIT))
            unet.add_adapter(config)
        # Trainable parameters in fp32 even when the frozen UNet is in half precision.
        self.lora_parameters = [p for p in unet.parameters() if p.requires_grad]
        for parameter in self.lora_parameters:
            parameter.data = parameter.data.float()
        unet.train()  # LoRA dropout is active only in train mode
        # The text encoder only feeds the UNet here: store it in the compute dtype (models.memory).
        from nsync_bench.models.memory import text_encoder_dtype

        dtype = text_encoder_dtype(self.name, self.precision.weight_dtype)
        if self.components.text_encoder.dtype != dtype:
            self.components.text_encoder.to(dtype=dtype)
        self._hidden_cache: dict[str, torch.Tensor] = {}

    def encode(self, prompts: list[str]) -> torch.Tensor:
        """The text encoder is frozen here: each distinct prompt is encoded once and reused."""
        missing = [p for p in dict.fromkeys(prompts) if p not in self._hidden_cache]
        if missing:
            with torch.no_grad():
                hidden = encode_prompts(self.components, missing, self.device)
            self._hidden_cache.update({p: hidden[k : k + 1] for k, p in enumerate(missing)})
        return torch.cat([self._hidden_cache[p] for p in prompts])

    def _lora_linears(self) -> list[nn.Linear]:
        """The LoRA A/B linear maps, in the order of :attr:`lora_parameters`."""
        owner = {id(m.weight): m for m in self.components.unet.modules()
                 if isinstance(m, nn.Linear) and m.weight.requires_grad}
        return [owner[id(p)] for p in self.lora_parameters]

    @property
    def supports_branch_parameters(self) -> bool:
        return all(isinstance(m, nn.Linear) and m.bias is None for m in self._lora_linears())

    @contextlib.contextmanager
    def branch_parameters(self, sizes: list[int]) -> Iterator[list[list[torch.Tensor]]]:
        """Each LoRA map applies branch b's leaf copy of its weight to branch b's rows (dim 0 is the
        sample in every attention projection of the UNet)."""
        linears = self._lora_linears()
        leaves = [[p.detach().clone().requires_grad_(True) for p in self.lora_parameters] for _ in sizes]
        for k, linear in enumerate(linears):
            weights = [branch[k] for branch in leaves]

            def forward(x: torch.Tensor, weights: list[torch.Tensor] = weights) -> torch.Tensor:
                chunks = x.split(sizes, dim=0)
                return torch.cat([F.linear(c, w.to(c.dtype)) for c, w in zip(chunks, weights, strict=True)])

            linear.forward = forward  # type: ignore[method-assign,assignment]  # an instance override, deleted below
        try:
            yield leaves
        finally:
            for linear in linears:
                del linear.forward  # back to the class's forward

    @property
    def token(self) -> str:
        return self.config.lora.style_token

    def param_groups(self) -> list[dict[str, Any]]:
        return [{"params": self.lora_parameters, "weight_decay": self.config.train.weight_decay}]

    def rule_parameters(self) -> list[torch.Tensor]:
        return self.lora_parameters

    def rule_vectors(self, gradients: list[torch.Tensor]) -> list[torch.Tensor]:
        return list(gradients)

    def add_to_gradients(self, vectors: list[torch.Tensor]) -> None:
        for parameter, vector in zip(self.lora_parameters, vectors, strict=True):
            if parameter.grad is None:
                parameter.grad = torch.zeros_like(parameter)
            parameter.grad.add_(vector.to(parameter.grad.dtype))

    def peft_state(self) -> dict[str, torch.Tensor]:
        from peft.utils import get_peft_model_state_dict

        return get_peft_model_state_dict(self.components.unet)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {name: tensor.detach().cpu().clone() for name, tensor in self.peft_state().items()}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        from peft.utils import set_peft_model_state_dict

        result = set_peft_model_state_dict(self.components.unet, state)
        unexpected = getattr(result, "unexpected_keys", None)
        if unexpected:
            raise ValueError(f"checkpoint has LoRA keys this model lacks: {unexpected[:5]}")

    def save_adapter(self, directory: Path) -> Path:
        from diffusers import StableDiffusionPipeline
        from diffusers.utils import convert_state_dict_to_diffusers

        lora = self.config.lora
        layers = convert_state_dict_to_diffusers({k: v.detach().float().cpu() for k, v in self.peft_state().items()})
        # The metadata carries alpha and rank, so a loader applies the same alpha / r scale.
        metadata = {"r": lora.rank, "lora_alpha": lora.alpha, "target_modules": list(lora.target_modules)}
        StableDiffusionPipeline.save_lora_weights(
            str(directory), unet_lora_layers=layers, safe_serialization=True, unet_lora_adapter_metadata=metadata
        )
        return directory / ADAPTER_FILE

    def evaluation_pipeline(self) -> Any:
        self.components.unet.eval()
        return build_pipeline(self.components)
