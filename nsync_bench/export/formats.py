"""Export a run's adapter where learned styles get used: diffusers, AUTOMATIC1111/ComfyUI, kohya.

Layouts, checked against the loaders' sources (see docs/adapters.md, "Export"):

- Textual Inversion, ``a1111``/``comfyui``/``kohya``: one safetensors file ``<name>.safetensors``
  holding ``{"emb_params": float32[n_vectors, dim]}`` — what kohya-ss/sd-scripts writes for SD 1.x/2.x
  embeddings. AUTOMATIC1111 (modules/textual_inversion/textual_inversion.py,
  ``EmbeddingDatabase.load_from_file``) takes a single-tensor safetensors file, names the embedding
  after the file; ComfyUI (comfy/sd1_clip.py, ``load_embed``) takes the first tensor and is prompted
  ``embedding:<name>``; diffusers' ``load_textual_inversion`` reads ``emb_params`` too.
- LoRA, ``kohya``/``comfyui``/``a1111``: ``lora_unet_<diffusers module path, '.' -> '_'>`` with
  ``.lora_down.weight`` [rank, in], ``.lora_up.weight`` [out, rank] and a scalar ``.alpha``
  (scale = alpha / rank). ComfyUI (comfy/lora.py, ``model_lora_keys_unet``) maps exactly these
  names onto the UNet; AUTOMATIC1111's built-in Lora extension converts them
  (extensions-builtin/Lora/networks.py); diffusers' ``load_lora_weights`` converts them back.
- ``diffusers``: the run's own adapter, as saved.

Every export writes a model card (README.md with YAML front matter) beside the file. Before anything
is written the source is verified: ``result.json`` and ``config.json`` must parse, and the adapter
must match the sha256 recorded in its ``checksums.json`` when it was saved (and parse as safetensors);
a damaged one is refused, naming the file. An ``ldm`` run has no adapter to export.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nsync_bench.errors import CorruptFileError, NsyncBenchError
from nsync_bench.export.model_card import card_fields, diffusers_usage, write_model_card
from nsync_bench.io import CHECKSUMS_FILE, read_json, verify_checksums

log = logging.getLogger(__name__)

TI_FILE = "learned_embeds.safetensors"
LORA_FILE = "pytorch_lora_weights.safetensors"
FORMATS = ("diffusers", "a1111", "comfyui", "kohya")
_RUN_ID = re.compile(r"^(runs:/)?([0-9a-f]{32})/?$")


@dataclass
class ExportSource:
    """A finished run's adapter folder, its ``config.json`` record and its final metrics."""

    adapter_dir: Path
    record: dict[str, Any]
    metrics: dict[str, float]

    @property
    def is_lora(self) -> bool:
        return (self.adapter_dir / LORA_FILE).is_file()


def load_source(source: str, tracking_uri: str | None, workdir: Path) -> ExportSource:
    """A run directory, or an MLflow run id (``runs:/<id>`` too) whose artifacts go to ``workdir``."""
    path = Path(source).expanduser()
    if path.is_dir():
        result = path / "result.json"
        if not result.is_file():
            raise NsyncBenchError(f"{path} has no result.json: the run has not finished. Finish it (run the same "
                                  "`nsync-bench run` command again) before exporting.")
        fix = ("Run the same `nsync-bench run` command again: it verifies the run folder and recomputes what is "
               "damaged; then export.")
        metrics = read_json(result, "the run's result", fix, required=("metrics",))["metrics"]
        record = _run_record(read_json(path / "config.json", "the run record", fix, required=("config",)),
                             path / "config.json", fix)
        return ExportSource(path / "adapter", record, metrics if isinstance(metrics, dict) else {})
    match = _RUN_ID.match(source)
    if match is None:
        raise NsyncBenchError(f"{source!r} is neither a run directory nor an MLflow run id (32 hex digits, or "
                              "runs:/<id>). Pass a folder under runs/ or the id shown by `nsync-bench run`.")
    return _from_mlflow(match.group(2), tracking_uri, workdir)


def _from_mlflow(run_id: str, tracking_uri: str | None, workdir: Path) -> ExportSource:
    from mlflow.artifacts import download_artifacts
    from mlflow.tracking import MlflowClient

    from nsync_bench.paths import tracking_uri as default_uri
    from nsync_bench.tracking.tracker import check_reachable

    uri = default_uri(tracking_uri)
    check_reachable(uri)
    try:
        run = MlflowClient(uri).get_run(run_id)
        adapter = download_artifacts(run_id=run_id, artifact_path="adapter", dst_path=str(workdir), tracking_uri=uri)
        config = download_artifacts(run_id=run_id, artifact_path="config.json", dst_path=str(workdir),
                                    tracking_uri=uri)
    except Exception as err:  # MlflowException, missing artifacts, HTTP errors
        raise NsyncBenchError(f"cannot read MLflow run {run_id} from {uri}: {err}. Check the id "
                              "(`nsync-bench ui`) and --tracking-uri / MLFLOW_TRACKING_URI.") from err
    if run.info.status != "FINISHED":
        raise NsyncBenchError(f"MLflow run {run_id} is {run.info.status}, not FINISHED: export a finished run.")
    metrics = {k: v for k, v in run.data.metrics.items() if k.startswith("metrics/")}
    fix = f"MLflow run {run_id}'s artifacts are damaged; export from its run folder, or recompute the run."
    return ExportSource(Path(adapter), _run_record(read_json(config, "the run record", fix, required=("config",)),
                                                   Path(config), fix), metrics)


def _run_record(record: dict[str, Any], path: Path, fix: str) -> dict[str, Any]:
    run = record["config"].get("run") if isinstance(record["config"], dict) else None
    if not isinstance(run, dict) or not {"style", "method", "seed"} <= set(run):
        raise CorruptFileError(f"the run record {path} lacks the run's style, method and seed. {fix}")
    return record


def verify_adapter(src: ExportSource) -> Path:
    """The adapter file to export, checked: present (an ``ldm`` run has none), matching the sha256 recorded
    when it was saved, and readable as safetensors. Raises naming the file otherwise."""
    method = src.record["config"]["run"]["method"]
    weights = src.adapter_dir / (LORA_FILE if src.is_lora else TI_FILE)
    if not weights.is_file():
        if method == "ldm":
            raise NsyncBenchError(f"{src.adapter_dir.parent} is an `ldm` run: the untrained base model has no adapter "
                                  "to export (its adapter/ folder holds only a note of the prompts). Export a trained "
                                  "run (ti, lora, nsync or nsync-lora).")
        raise CorruptFileError(f"the adapter {weights} is missing; nothing was exported. Recompute the run (the same "
                               "`nsync-bench run` command with --restart).")
    fix = "Nothing was exported. Recompute the run (the same `nsync-bench run` command with --restart)."
    if (src.adapter_dir / CHECKSUMS_FILE).is_file():  # runs saved before checksums were recorded have none
        verify_checksums(src.adapter_dir, "the adapter", fix)
    try:
        from safetensors import safe_open

        with safe_open(str(weights), "pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open has no __iter__
                handle.get_tensor(key)
    except Exception as err:  # safetensors raises its own error types for a torn file
        raise CorruptFileError(f"the adapter {weights} does not read as safetensors ({type(err).__name__}: "
                               f"{err}). {fix}") from None
    return weights


def _check_out(out: Path, src: ExportSource) -> None:
    """The run's own adapter folder is no place for an export: it would overwrite the run's model card."""
    target, adapter = out.expanduser().resolve(), src.adapter_dir.resolve()
    if target == adapter or adapter in target.parents:
        raise NsyncBenchError(f"--out {out} is the run's own adapter folder; an export there would overwrite the "
                              "run's model card (and, for --format diffusers, its adapter). Pass another --out, e.g. "
                              "exports/NAME.")


def default_name(record: dict[str, Any]) -> str:
    spec = record["config"]["run"]
    return f"{spec['style']}-{spec['method']}-seed{spec['seed']}"


def export(source: str, fmt: str, out: Path, *, name: str | None = None, tracking_uri: str | None = None) -> Path:
    """Write the adapter of ``source`` in format ``fmt`` into ``out``; returns the adapter file."""
    if fmt not in FORMATS:
        raise NsyncBenchError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    with tempfile.TemporaryDirectory(prefix="nsync-export-") as tmp:
        src = load_source(source, tracking_uri, Path(tmp))
        name = name or default_name(src.record)
        if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
            raise NsyncBenchError(f"--name {name!r}: use letters, digits, '.', '_' and '-' only (it becomes the "
                                  "file name, which AUTOMATIC1111 and ComfyUI use as the embedding's name).")
        weights = verify_adapter(src)  # before anything is written: a refusal leaves no (empty) folder
        _check_out(out, src)
        out.mkdir(parents=True, exist_ok=True)
        fields = card_fields(src.record, src.metrics, fmt)
        if fmt == "diffusers":
            target = out / weights.name
            shutil.copyfile(weights, target)
            usage = diffusers_usage(fields)
        elif src.is_lora:
            target = out / f"{name}.safetensors"
            write_kohya_lora(src.adapter_dir / LORA_FILE, target)
            usage = _webui_usage(fields, name, lora=True)
        else:
            target = out / f"{name}.safetensors"
            write_webui_embedding(src.adapter_dir / TI_FILE, target)
            usage = _webui_usage(fields, name, lora=False)
            # The webuis name an embedding after its file: that name is the trigger there.
            fields["instance_prompt"] = fields["instance_prompt"].replace(fields["trigger_token"], name)
            fields["trigger_token"] = name
        write_model_card(out, fields, usage)
    log.debug("exported %s as %s to %s", source, fmt, target)
    return target


def write_webui_embedding(diffusers_file: Path, target: Path) -> None:
    """diffusers ``{token: [n, d]}`` -> ``{"emb_params": [n, d]}`` (A1111, ComfyUI, kohya)."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(diffusers_file))
    if len(tensors) != 1:
        raise NsyncBenchError(f"{diffusers_file} holds {len(tensors)} tensors; a Textual Inversion adapter has one.")
    embedding = next(iter(tensors.values())).float()
    if embedding.ndim == 1:
        embedding = embedding.unsqueeze(0)
    save_file({"emb_params": embedding.contiguous()}, str(target), metadata={"format": "pt"})


def kohya_key(diffusers_key: str) -> str:
    """``unet.<module>.lora.down.weight`` -> ``lora_unet_<module with '_'>.lora_down.weight``."""
    match = re.fullmatch(r"unet\.(.+)\.lora\.(down|up)\.weight", diffusers_key)
    if match is None:
        raise NsyncBenchError(f"unexpected LoRA key {diffusers_key!r}: only UNet LoRA layers are exported.")
    return f"lora_unet_{match.group(1).replace('.', '_')}.lora_{match.group(2)}.weight"


def write_kohya_lora(diffusers_file: Path, target: Path) -> None:
    """The run's diffusers LoRA file in kohya's key layout with per-module ``.alpha``."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(diffusers_file), "pt") as handle:
        metadata = handle.metadata() or {}
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - safe_open has no __iter__
    alpha = float(json.loads(metadata.get("lora_adapter_metadata", "{}")).get("unet.lora_alpha", 0) or 0)
    out: dict[str, Any] = {}
    for key, tensor in tensors.items():
        new = kohya_key(key)
        out[new] = tensor.float().contiguous()
        if new.endswith(".lora_down.weight"):
            # Without metadata, alpha = rank keeps diffusers' default scale of 1.
            out[new.removesuffix(".lora_down.weight") + ".alpha"] = torch.tensor(alpha or float(tensor.shape[0]))
    save_file(out, str(target), metadata={"ss_network_module": "networks.lora", "ss_network_dim": str(
        next(t.shape[0] for k, t in out.items() if k.endswith("lora_down.weight"))), "ss_network_alpha": str(alpha)})


def _webui_usage(fields: dict[str, Any], name: str, *, lora: bool) -> str:
    if lora:
        return (f"- AUTOMATIC1111: copy `{name}.safetensors` to `models/Lora/`, prompt "
                f"`<lora:{name}:1> {fields['instance_prompt']}`.\n"
                f"- ComfyUI: copy it to `models/loras/`, load it with a LoraLoader node; prompt "
                f"\"{fields['instance_prompt']}\".\n"
                f"- kohya-ss/sd-scripts and diffusers (`pipe.load_lora_weights(\"{name}.safetensors\")`) read it too.")
    token, prompt = fields["trigger_token"], fields["instance_prompt"]
    return (f"- AUTOMATIC1111: copy `{name}.safetensors` to `embeddings/`, prompt "
            f"\"{prompt.replace(token, name)}\".\n"
            f"- ComfyUI: copy it to `models/embeddings/`, prompt \"{prompt.replace(token, 'embedding:' + name)}\".\n"
            f"- diffusers: `pipe.load_textual_inversion(\"{name}.safetensors\", token=\"{name}\")`.")
