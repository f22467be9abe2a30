"""Typed, validated run configuration.

A run is ``(style, method, seed, profile, protocol)``. Its config is resolved in layers, later
layers winning:

1. the defaults of the models below;
2. the protocol's ``[defaults]`` table, then its ``[methods.<method>]`` table (the *recipe*:
   batch size, learning rate, steps, optimizer, NSYNC rule — files in ``baselines/protocols/``);
3. the profile (the *what and where*: base model, resolution, precision, sampling; the smoke
   profile also shrinks the step budget) — files in ``nsync_bench/config/profiles/``;
4. ``--set key=value`` overrides.

The resolved config is saved with every run; :func:`nsync_bench.data.run_key.run_key` hashes it.
"""

from __future__ import annotations

import difflib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from nsync_bench.compat import tomllib
from nsync_bench.config.plugins import plugin_table
from nsync_bench.errors import ConfigError, unknown_name

# NSYNC: a direction with w.w <= eps is degenerate (nsync.eps; nsync_bench.methods.nsync).
DEFAULT_EPS = 1e-20
# CMMD's CLIP (cmmd-pytorch): metrics.clip_model, the extractor's default and its weights entry.
CLIP_MODEL = "openai/clip-vit-large-patch14-336"

class _Section(BaseModel):
    # allow_inf_nan=False: no float option of a run means anything at infinity (eval.guidance_scale=inf made
    # the sampler produce NaN); inf is refused like nan, for every float here.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class RunSpec(_Section):
    """The five coordinates of a run; all are MLflow tags."""

    style: str
    method: str
    # derive_seed hashes any integer, but seeds are stored and compared as 64-bit integers.
    seed: int = Field(0, ge=0, le=2**63 - 1)
    profile: str
    protocol: str


class ModelConfig(_Section):
    # "toy-world": the committed CPU-trained base model of the toy world (nsync_bench.world.model).
    source: Literal["tiny", "pretrained", "toy-world"] = "tiny"
    # Hub id or local directory in the diffusers layout (source = "pretrained").
    pretrained: str | None = None
    revision: str | None = None
    # Training resolution in pixels; the released code uses vae.sample_size (512 for SD 1.5).
    resolution: int = Field(32, ge=8)
    # "no" = fp32. fp16/bf16 apply only on CUDA (frozen weights in half, trainables in fp32).
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    tiny_seed: int = 0


class DataConfig(_Section):
    # Released code: bicubic resize to a square without cropping, random horizontal flip p=0.5.
    interpolation: Literal["bicubic", "bilinear", "lanczos"] = "bicubic"
    center_crop: bool = False
    flip_p: float = Field(0.5, ge=0.0, le=1.0)


class TrainConfig(_Section):
    max_steps: int = Field(8000, ge=1)
    batch_size: int = Field(4, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    learning_rate: float = Field(5e-4, gt=0)
    # Released code: lr = base lr x batch size x accumulation x processes.
    scale_lr: bool = True
    optimizer: Literal["adamw"] = "adamw"
    adam_beta1: float = Field(0.9, ge=0, lt=1)
    adam_beta2: float = Field(0.999, ge=0, lt=1)
    adam_epsilon: float = Field(1e-8, gt=0)
    # torch.optim.AdamW's default, which the released code inherits.
    weight_decay: float = Field(0.01, ge=0)
    lr_scheduler: Literal["constant"] = "constant"
    max_grad_norm: float | None = Field(None, gt=0)
    checkpoint_every: int = Field(1000, ge=1)
    # Checkpoints kept on disk (the newest ones); the final adapter is saved separately.
    checkpoints_keep: int = Field(1, ge=1)
    log_every: int = Field(1, ge=1)
    gradient_checkpointing: bool = False
    # Encode each training image (and its mirror) with the frozen VAE once and sample its latent
    # distribution every step (training.latents), instead of encoding every step.
    cache_latents: bool = True


class PromptConfig(_Section):
    # "caption": "{caption} in the style of {token}" (the released code's TI baseline);
    # "templates": the classic TI style templates ("a painting in the style of {token}", ...).
    mode: Literal["caption", "templates"] = "caption"
    train_template: str = "{caption} in the style of {token}"


class TextualInversionConfig(_Section):
    # Released code: "<illustration-special>"; any string that is not already a token works.
    placeholder_token: str = "<nsync-style>"  # noqa: S105 - a token, not a password
    # None: the style's initializer word from its manifest (painting, illustration, animation).
    initializer_token: str | None = None
    # The released code lets AdamW's weight decay shrink every vocabulary row (they all carry a
    # gradient tensor). False keeps all rows but the placeholder bit-identical; True reproduces it.
    decay_whole_vocabulary: bool = False


class LoraConfig(_Section):
    # Defaults from diffusers' examples/text_to_image/train_text_to_image_lora.py: rank 4,
    # lora_alpha = rank, Gaussian init, the UNet attention projections.
    rank: int = Field(4, ge=1)
    alpha: float = Field(4.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = ["to_k", "to_q", "to_v", "to_out.0"]
    init: Literal["gaussian", "default"] = "gaussian"
    # LoRA learns no token; prompts name the style with a rare identifier (DreamBooth's convention).
    style_token: str = "sks"  # noqa: S105 - a token, not a password


class NsyncConfig(_Section):
    """NSYNC's gradient rule (nsync_bench.methods.nsync.refine_gradient)."""

    rule: Literal["paper", "code-v4.1", "code-v4.2", "code-v5.0", "code-v5.1"] = "paper"
    # LoRA: the rule acts on the flattened vector of all LoRA parameters, or on each tensor.
    projection_scope: Literal["global", "per_tensor"] = "global"
    # A direction with w.w <= eps is degenerate: its projection is skipped (and counted).
    eps: float = Field(DEFAULT_EPS, ge=0)
    # The user's own negative set (one image per training image, same file stem) instead of ours.
    negatives_dir: str | None = None
    # One text-encoder/UNet pass over all branches with per-branch gradients kept apart (fast), or
    # one pass per branch (the released code's structure; kept for checking).
    fused: bool = True
    # "auto": an anchor pass only for rules that use it; "always": also for code-v4.2, whose released
    # code runs the anchor pass and discards its gradient (reproduces that cost; results unchanged).
    run_anchor: Literal["auto", "always"] = "auto"
    # The negative image's horizontal flip: "paired" = its positive's flip (a content twin down to
    # orientation); "independent" = its own draw, as the released code's dataset flips each image.
    negative_flip: Literal["paired", "independent"] = "paired"


class NegativesConfig(_Section):
    """NSYNC's negative set: the frozen base model renders each training caption generically."""

    # Released code (gen_generic_dataset.py): caption + " in the style of " + initializer word.
    prompt_template: str = "{caption} in the style of {generic}"
    generic_word: str | None = None  # None: the style's initializer word
    seed: int = Field(0, ge=0)  # the set is shared by every run of a style, so it has its own seed
    num_inference_steps: int = Field(50, ge=1)
    guidance_scale: float = Field(7.5, ge=0)
    save_size: int = Field(256, ge=8)  # released code: saved at 256 px, resized again for training
    batch_size: int = Field(8, ge=1)  # prompts per pipeline call (part of the set's cache key)


class EvalConfig(_Section):
    # Released code (gen_imgs.py): the pipeline's default scheduler, 50 steps, CFG 7.5, 256 px.
    num_inference_steps: int = Field(50, ge=1)
    guidance_scale: float = Field(7.5, ge=0)
    save_size: int = Field(256, ge=8)
    prompt_template: str = "{caption} in the style of {token}"
    # Evaluate on at most this many test captions (None: all, as the released code does).
    max_prompts: int | None = Field(None, ge=1)
    grid_images: int = Field(8, ge=1)
    # Prompts per pipeline call. Image i's initial latent is fixed whatever the batch; batching
    # changes its pixels only at floating-point level (on the toy world's CPU path not at all: tested).
    batch_size: int = Field(8, ge=1)
    # Sampling precision on a CPU. "bf16": the text encoder and UNet run under bf16 autocast, about
    # 1.7x faster where the CPU has native bf16 (avx512_bf16, AMX) and a different image (pixels move
    # by a few levels; the metric deltas are measured in docs/toy-world.md). Ignored on CUDA, where
    # model.mixed_precision applies. NSYNC's negative sets always sample in fp32 on a CPU.
    cpu_precision: Literal["fp32", "bf16"] = "fp32"
    # Learning curve: also evaluate and score at these optimizer steps (the release saves the
    # embedding every 1000 steps); [] = at the end only. Steps >= train.max_steps are covered by the
    # final evaluation. Logged as curve/<metric> against step (nsync_bench.pipeline.learning_curve).
    at_steps: list[int] = Field(default_factory=list)
    # The learning curve's evaluations use the first N evaluation prompts (the same prompts, seeds and
    # initial latents as the first N images of the final evaluation, which is also scored on them as the
    # curve's last point); None: all of the final evaluation's prompts. Real profiles declare a subset.
    curve_prompts: int | None = Field(None, ge=2)

    @field_validator("at_steps")
    @classmethod
    def _positive_sorted(cls, steps: list[int]) -> list[int]:
        bad = [s for s in steps if s < 1]
        if bad:
            raise ValueError(f"steps must be >= 1 (optimizer steps after which to evaluate); got {bad}")
        return sorted(set(steps))


class MetricsConfig(_Section):
    """How a run scores its evaluation images against the style's real test images."""

    # Each a row of metrics/plugins.toml (the metrics' registry: nsync_bench.metrics.registry). The default is
    # spelled out rather than "every registered metric" so that registering one does not change every run key.
    # Empty: the run generates its images and scores nothing (the GPU check's timing runs).
    names: list[str] = ["fid", "kid", "cmmd", "csd"]
    # "real": the reference networks and weights; "smoke": small random-weight extractors of the
    # same kinds (their implementation ids say so; the numbers only check the pipeline).
    # "toy-world": the toy world's trained probe (nsync_bench.world.extractors; ids "toy-world-probe:").
    extractors: Literal["real", "smoke", "toy-world"] = "real"
    # Inception features for FID/KID: clean-fid's "clean" (default), its "legacy_pytorch", or
    # "nsync-legacy" = gan-metrics-pytorch as the paper used it (FID = mean of seeded bootstraps).
    inception_mode: Literal["clean", "legacy_pytorch", "nsync-legacy"] = "clean"
    clip_model: str = CLIP_MODEL  # CMMD's CLIP (cmmd-pytorch)
    kid_subsets: int = Field(100, ge=1)
    kid_subset_size: int = Field(1000, ge=2)  # capped at the smaller set (clean-fid's estimator)
    fid_bootstraps: int = Field(10, ge=1)  # nsync-legacy only
    # nsync-legacy only: gan-metrics-pytorch's --batch-size (50, its default and the release's
    # command). It embeds only whole batches, so FID/KID use the first N // b * b images of a set
    # (all of them when N <= b); the counts actually used are reported.
    legacy_batch_size: int = Field(50, ge=1)
    seed: int = Field(0, ge=0)
    batch_size: int = Field(32, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @field_validator("names")
    @classmethod
    def _registered(cls, names: list[str]) -> list[str]:
        known = plugin_table().get("metrics", {})
        for name in names:
            if name not in known:
                raise ValueError(str(unknown_name("metric", name, known, "(metrics/plugins.toml registers them)")))
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"metrics named twice: {repeated}; list each once")
        return names


class RunConfig(_Section):
    run: RunSpec
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Intra-op CPU threads (None: torch's default). CPU float reductions depend on the thread
    # count, so it is part of the run; tiny models gain nothing from threads, and OpenMP's
    # spin-waiting collapses when another process shares a 2-core machine.
    cpu_threads: int | None = Field(None, ge=1)
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    prompts: PromptConfig = PromptConfig()
    ti: TextualInversionConfig = TextualInversionConfig()
    lora: LoraConfig = LoraConfig()
    nsync: NsyncConfig = NsyncConfig()
    negatives: NegativesConfig = NegativesConfig()
    eval: EvalConfig = EvalConfig()
    metrics: MetricsConfig = MetricsConfig()

    def flat(self) -> dict[str, Any]:
        """``{"train.max_steps": 8000, ...}``: the MLflow params."""
        return flatten(self.model_dump(mode="json"))


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """A new dict: ``update`` merged into ``base`` recursively (tables merge, values replace)."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _allowed_keys(model: type[BaseModel]) -> list[str]:
    return sorted(model.model_fields)


def check_keys(tree: dict[str, Any], origin: str, model: type[BaseModel] = RunConfig, prefix: str = "") -> None:
    """Raise a :class:`ConfigError` naming the first unknown key in ``tree`` and the allowed ones."""
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if key not in model.model_fields:
            allowed = [f"{prefix}{k}" for k in _allowed_keys(model)]
            close = difflib.get_close_matches(dotted, allowed, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"unknown config key {dotted!r} in {origin}; allowed keys here: {', '.join(allowed)}.{hint}"
            )
        annotation = model.model_fields[key].annotation
        if isinstance(value, dict) and isinstance(annotation, type) and issubclass(annotation, BaseModel):
            check_keys(value, origin, annotation, f"{dotted}.")


def parse_override(text: str) -> tuple[str, Any]:
    """``"train.max_steps=10"`` -> ``("train.max_steps", 10)``; values are parsed as TOML, else kept as text."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {text!r} is not of the form key=value (e.g. --set train.max_steps=10).")
    raw = raw.strip()
    if raw.lower() in {"none", "null"}:
        return key, None
    try:
        return key, tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return key, raw


def overrides_to_tree(overrides: list[str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for text in overrides:
        key, value = parse_override(text)
        if key.split(".")[0] == "run":
            raise ConfigError(
                f"--set {key} is not allowed: set the run coordinates with --style, --method, --seed, "
                "--profile and --protocol."
            )
        node = tree
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    check_keys(tree, "--set")
    return tree


def validate(tree: dict[str, Any], origin: str) -> RunConfig:
    """Build a :class:`RunConfig`, turning pydantic's errors into one message per bad key."""
    check_keys(tree, origin)
    try:
        return RunConfig.model_validate(tree)
    except ValidationError as err:
        problems = []
        for item in err.errors():
            key = ".".join(str(p) for p in item["loc"])
            value = item.get("input")
            problems.append(f"{key} = {value!r}: {item['msg']}")
        raise ConfigError(f"invalid config ({origin}): " + "; ".join(problems)) from None
