"""Model cards: a ``README.md`` with YAML front matter next to every adapter.

Like diffusers' training scripts (``save_model_card`` in examples/textual_inversion and
examples/text_to_image/train_text_to_image_lora.py), so a hub upload or a folder shared by hand
says what the adapter is: base model and its license, trigger token, method, run key, metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nsync_bench.config.methods import method_info

CARD_FILE = "README.md"

# Licenses of the base models the profiles use (from their hub model cards). The smoke profile's tiny
# models are built in code by this project, so they carry the project's license.
BASE_MODEL_LICENSES = {
    "stable-diffusion-v1-5/stable-diffusion-v1-5": "creativeml-openrail-m",
    "runwayml/stable-diffusion-v1-5": "creativeml-openrail-m",
    "CompVis/stable-diffusion-v1-4": "creativeml-openrail-m",
    "stabilityai/stable-diffusion-2-base": "openrail++",
    "stabilityai/stable-diffusion-2-1-base": "openrail++",
    "stabilityai/stable-diffusion-2-1": "openrail++",
}
TINY_BASE_MODEL = "nsync-bench/tiny-seeded"  # not on any hub: built by nsync_bench.models.tiny


def card_fields(record: dict[str, Any], metrics: dict[str, float], adapter_format: str = "diffusers") -> dict[str, Any]:
    """Front matter for the run recorded in ``record`` (the contents of a run's ``config.json``)."""
    config = record["config"]
    spec, model = config["run"], config["model"]
    base = model.get("pretrained") if model.get("source") == "pretrained" else None
    base_model = base or TINY_BASE_MODEL
    info = method_info(spec["method"])  # the adapter's kind and where its trigger token is set
    trigger, kind = info.trigger_token(config), info.adapter_kind
    return {
        "base_model": base_model,
        "license": BASE_MODEL_LICENSES.get(base_model, "apache-2.0" if base is None else "other"),
        "library_name": "diffusers",
        "pipeline_tag": "text-to-image",
        "tags": ["text-to-image", "diffusers", "stable-diffusion", kind, f"nsync-bench-{spec['method']}",
                 "nsync-bench"],
        "trigger_token": trigger,
        # An example prompt in the run's own template (evaluation prompts fill {caption} from the test split).
        "instance_prompt": config["eval"]["prompt_template"].replace("{caption}", "a house")
        .replace("{token}", trigger),
        "method": spec["method"],
        "style": spec["style"],
        "seed": spec["seed"],
        "profile": spec["profile"],
        "protocol": spec["protocol"],
        "run_key": record["run_key"],
        "git_sha": record.get("git_sha", "unknown"),
        "adapter_format": adapter_format,
        "resolution": model["resolution"],
        "metrics": {k.removeprefix("metrics/"): float(v) for k, v in sorted(metrics.items())
                    if k.startswith("metrics/")},
    }


def render(fields: dict[str, Any], usage: str) -> str:
    import yaml

    front = yaml.safe_dump(fields, sort_keys=False, allow_unicode=True)
    spec = fields
    rows = "\n".join(f"| {name} | {value:.6g} |" for name, value in spec["metrics"].items())
    smoke = ("\n**Smoke profile:** a tiny random base model built in code; these numbers check the pipeline, "
             "not the method.\n" if spec["profile"] == "smoke" else "")
    return (
        f"---\n{front}---\n\n"
        f"# {spec['style']} — {spec['method']} (seed {spec['seed']})\n\n"
        f"A {spec['method']} adapter for `{spec['base_model']}` trained by "
        f"nsync-bench on style `{spec['style']}` with profile `{spec['profile']}`, protocol "
        f"`{spec['protocol']}`, run key `{spec['run_key']}` (code {spec['git_sha']}).\n"
        f"Trigger: `{spec['trigger_token']}`, e.g. \"{spec['instance_prompt']}\".\n{smoke}\n"
        f"## Usage\n\n{usage}\n\n"
        "## Metrics (evaluation images against the style's test split)\n\n"
        f"| metric | value |\n|---|---|\n{rows}\n\n"
        f"License: the base model's (`{spec['license']}`).\n"
    )


def diffusers_usage(fields: dict[str, Any], adapter_dir: str = ".") -> str:
    base = fields["base_model"]
    load = (f'pipe.load_lora_weights("{adapter_dir}")' if "lora" in fields["tags"]
            else f'pipe.load_textual_inversion("{adapter_dir}")')
    return (
        "```python\nfrom diffusers import StableDiffusionPipeline\n\n"
        f'pipe = StableDiffusionPipeline.from_pretrained("{base}")\n{load}\n'
        f'image = pipe("{fields["instance_prompt"]}").images[0]\n```'
    )


def write_model_card(directory: Path, fields: dict[str, Any], usage: str | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CARD_FILE
    path.write_text(render(fields, usage or diffusers_usage(fields)), encoding="utf-8")
    return path


def write_run_card(adapter_dir: Path, record: dict[str, Any], metrics: dict[str, float]) -> Path:
    """The card a run writes next to its own (diffusers-format) adapter."""
    return write_model_card(adapter_dir, card_fields(record, metrics))
