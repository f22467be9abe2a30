"""The toy world's base model: a pixel-space text-to-image model small enough to train on a CPU.

Diffusers/transformers components, so every method trains against it unchanged:

* ``UNet2DConditionModel`` on 32x32 RGB pixels, cross-attention only at 8x8 and in the mid block
  (self-attention at 16x16 costs 2-3x the step time on a CPU);
* ``CLIPTextModel`` (hidden 64, 2 layers) with the real 49,408-token CLIP tokenizer truncated to
  :data:`MAX_TOKENS` positions (the world's captions are short);
* :class:`PixelSpaceVAE`, an identity "autoencoder": the UNet works on pixels, so encode/decode
  only have to give the pipeline and the trainers the interface of ``AutoencoderKL``;
* v-prediction with the cosine schedule (epsilon-prediction left coloured noise at this budget),
  sampled with DDIM.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput, DiagonalGaussianDistribution
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from diffusers.models.modeling_utils import ModelMixin

from nsync_bench.errors import ModelNotAvailableError
from nsync_bench.io import file_sha256
from nsync_bench.models.components import DiffusionComponents
from nsync_bench.models.tokenizer import CLIP_VOCAB_SIZE, load_clip_tokenizer
from nsync_bench.world.render import RESOLUTION

logger = logging.getLogger(__name__)

MAX_TOKENS = 24
WEIGHTS_DIR = Path(__file__).parent / "weights"
MANIFEST = "manifest.json"
SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_schedule": "squaredcos_cap_v2",
    "prediction_type": "v_prediction",
    # StableDiffusionPipeline rewrites these two on any other value (with a warning): set them as it would.
    "clip_sample": False,
    "steps_offset": 1,
}


class PixelSpaceVAE(ModelMixin, ConfigMixin):  # type: ignore[misc]  # diffusers' bases disagree on config_name
    """Identity autoencoder: latents are the pixels in [-1, 1] (scale factor 1, 3 channels).

    ``encode`` returns a Gaussian with the pixels as mean and a negligible std (exp(-15)), so code
    that samples the latent distribution gets the pixels back; ``decode`` returns its input.
    """

    @register_to_config
    def __init__(self, block_out_channels: tuple[int, ...] = (3,), latent_channels: int = 3,
                 scaling_factor: float = 1.0, sample_size: int = RESOLUTION, force_upcast: bool = False) -> None:
        super().__init__()
        # A parameter-free module has no dtype/device for diffusers to report: keep one scalar.
        self.register_buffer("anchor", torch.zeros(1), persistent=False)

    def encode(self, x: torch.Tensor, return_dict: bool = True) -> Any:
        moments = torch.cat([x, torch.full_like(x, -30.0)], dim=1)
        dist = DiagonalGaussianDistribution(moments)
        return AutoencoderKLOutput(latent_dist=dist) if return_dict else (dist,)

    def decode(self, z: torch.Tensor, return_dict: bool = True, generator: Any = None) -> Any:
        return DecoderOutput(sample=z) if return_dict else (z,)

    def forward(self, sample: torch.Tensor) -> torch.Tensor:
        return sample


def build_unet() -> Any:
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=RESOLUTION,
        in_channels=3,
        out_channels=3,
        block_out_channels=(32, 64, 96),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        cross_attention_dim=64,
        attention_head_dim=4,  # diffusers' old name: this is the number of heads (4 x 24 dims)
        norm_num_groups=16,
    )


def build_text_encoder() -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=CLIP_VOCAB_SIZE,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=MAX_TOKENS,
        projection_dim=64,
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
        hidden_act="quick_gelu",
    )
    return CLIPTextModel(config)


def world_tokenizer() -> Any:
    tokenizer = load_clip_tokenizer()
    tokenizer.model_max_length = MAX_TOKENS
    return tokenizer


def schedulers() -> tuple[Any, Any]:
    from diffusers import DDIMScheduler, DDPMScheduler

    return DDPMScheduler(**SCHEDULER_CONFIG), DDIMScheduler(**SCHEDULER_CONFIG)


def build_components(seed: int = 0) -> DiffusionComponents:
    """Freshly initialised (untrained) components, deterministic in ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = build_unet()
        torch.manual_seed(seed + 1)
        text_encoder = build_text_encoder()
    noise_scheduler, sample_scheduler = schedulers()
    return DiffusionComponents(
        tokenizer=world_tokenizer(), text_encoder=text_encoder, vae=PixelSpaceVAE(), unet=unet,
        noise_scheduler=noise_scheduler, sample_scheduler=sample_scheduler, source=f"toy-world-untrained:seed={seed}",
    )


def save_weights(components: DiffusionComponents, directory: Path, meta: dict[str, Any]) -> dict[str, str]:
    """Write the UNet and text encoder as fp16 safetensors plus a manifest with their sha256.

    fp16 halves the committed size (about 11 MB); the loader casts back to float32.
    """
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    hashes = {}
    for name, module in (("unet", components.unet), ("text_encoder", components.text_encoder)):
        state = {k: v.detach().to(torch.float16).contiguous() for k, v in module.state_dict().items()}
        path = directory / f"{name}.safetensors"
        save_file(state, str(path))
        hashes[path.name] = file_sha256(path)
    (directory / MANIFEST).write_text(json.dumps({**meta, "sha256": hashes}, indent=2, sort_keys=True) + "\n")
    return hashes


def _named_for(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` under the module's own key names: transformers 5 saved CLIPTextModel without the
    ``text_model.`` prefix that transformers 4 expects; the tensors are the same."""
    expected = set(module.state_dict())
    if set(state) == expected:
        return state
    for prefix in ("text_model.",):
        if {f"{prefix}{k}" for k in state} == expected:
            return {f"{prefix}{k}": v for k, v in state.items()}
        if {k.removeprefix(prefix) for k in state} == expected:
            return {k.removeprefix(prefix): v for k, v in state.items()}
    return state  # strict loading names what differs


def load_world_components(directory: str | Path | None = None) -> DiffusionComponents:
    """The trained base model from ``directory`` (default: the committed weights), sha256-checked."""
    from safetensors.torch import load_file

    directory = Path(directory) if directory is not None else WEIGHTS_DIR
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise ModelNotAvailableError(
            f"no toy-world base model at {directory} ({MANIFEST} missing). Fix: reinstall nsync-bench "
            "(the weights ship with it) or rebuild them with `nsync-bench world build`."
        )
    manifest = json.loads(manifest_path.read_text())
    components = build_components(seed=int(manifest["build"]["seed"]))
    for name, module in (("unet", components.unet), ("text_encoder", components.text_encoder)):
        path = directory / f"{name}.safetensors"
        expected = manifest["sha256"].get(path.name)
        actual = file_sha256(path) if path.is_file() else None
        if actual is None or actual != expected:
            raise ModelNotAvailableError(
                f"toy-world weights {path} {'are missing' if actual is None else 'have sha256 ' + actual}, "
                f"expected {expected}. Fix: restore the file from the repository (git checkout -- {path.name}) "
                "or rebuild with `nsync-bench world build`."
            )
        state = {k: v.float() for k, v in load_file(str(path)).items()}
        module.load_state_dict(_named_for(module, state), strict=True)
    for module in (components.unet, components.text_encoder, components.vae):
        module.requires_grad_(False)
        module.eval()
    components.source = f"toy-world:{manifest['sha256']['unet.safetensors'][:12]}"
    return components
