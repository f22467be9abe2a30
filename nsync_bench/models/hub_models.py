"""The hub models a real run downloads, pinned: repository, revision, and the files the loaders read.

Revisions are commits of the public repositories (the profiles and captioners pin them; ``--set
model.revision=...`` or a captioner's ``--revision`` overrides). Sizes are those of the files at that
revision where they are published (``approx`` marks a figure derived from the architecture instead);
a hub download is verified by huggingface_hub against the revision's own file hashes, so the commit
is the hash that pins every file. ``nsync-bench run ... --dry-run`` lists them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class HubModel:
    repo_id: str
    revision: str
    description: str
    files: dict[str, int | None] = field(default_factory=dict)  # path in the repository: bytes (None: small)
    approx: bool = False  # sizes derived from the architecture, not read from the repository
    license: str = ""

    @property
    def size(self) -> int:
        return sum(size or 0 for size in self.files.values())

    def download_command(self) -> str:
        return f"hf download {self.repo_id} --revision {self.revision} " + " ".join(self.files)


_TOKENIZER = {"tokenizer/merges.txt": None, "tokenizer/special_tokens_map.json": None,
              "tokenizer/tokenizer_config.json": None, "tokenizer/vocab.json": None}
_CONFIGS = {"model_index.json": None, "scheduler/scheduler_config.json": None, "text_encoder/config.json": None,
            "unet/config.json": None, "vae/config.json": None}

SD15 = HubModel(
    "stable-diffusion-v1-5/stable-diffusion-v1-5", "451f4fe16113bff5a5d2269ed5ad43b0592e9a14",
    "Stable Diffusion 1.5 (fp32 weights: UNet, VAE, CLIP ViT-L/14 text encoder)",
    {**_CONFIGS, **_TOKENIZER, "text_encoder/model.safetensors": 492_265_874,
     "unet/diffusion_pytorch_model.safetensors": 3_438_167_540, "vae/diffusion_pytorch_model.safetensors": 334_643_276},
    license="CreativeML OpenRAIL-M")
SD2_BASE = HubModel(
    "stabilityai/stable-diffusion-2-base", "fa386bb446685d8ad8a8f06e732a66ad10be6f47",
    "Stable Diffusion 2 base (fp32 weights: UNet, VAE, OpenCLIP ViT-H/14 text encoder)",
    {**_CONFIGS, **_TOKENIZER, "text_encoder/model.safetensors": 1_360_000_000,
     "unet/diffusion_pytorch_model.safetensors": 3_460_000_000, "vae/diffusion_pytorch_model.safetensors": 334_643_268},
    approx=True, license="CreativeML Open RAIL++-M")
CLIP_336 = HubModel(
    "openai/clip-vit-large-patch14-336", "ce19dc912ca5cd21c8a653c79e251e808ccabcd1",
    "CLIP ViT-L/14@336 (CMMD)",
    {"config.json": None, "preprocessor_config.json": None, "model.safetensors": 1_710_000_000}, approx=True,
    license="MIT")
BLIP_LARGE = HubModel(
    "Salesforce/blip-image-captioning-large", "353689b859fcf0523410b1806dace5fb46ecdf41",
    "BLIP captioner (large)",
    {"config.json": None, "preprocessor_config.json": None, "special_tokens_map.json": None, "tokenizer.json": None,
     "tokenizer_config.json": None, "vocab.txt": None, "model.safetensors": 1_879_014_680},
    license="BSD-3-Clause")
INTERNVL2_2B = HubModel(
    "OpenGVLab/InternVL2-2B", "e4f6747bd20f139e637642c6a058c6bd00b36919",
    "InternVL2-2B captioner (the released NSYNC code's; runs the repository's own Python code)",
    {"config.json": None, "model.safetensors": 4_400_000_000}, approx=True, license="MIT")

KNOWN: dict[str, HubModel] = {m.repo_id: m for m in (SD15, SD2_BASE, CLIP_336, BLIP_LARGE, INTERNVL2_2B)}


def known_model(repo_id: str) -> HubModel | None:
    return KNOWN.get(repo_id)
