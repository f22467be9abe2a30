"""Official metric weights: where each file comes from, where it must lie, and how to fetch it.

The metrics are only comparable with the reference implementations when the networks carry the
reference weights (``docs/metrics.md`` §6, "Weights"), so every file is
named here with its source URL and, where known, its sha256. Nothing is downloaded implicitly:
a missing file is a :class:`ModelNotAvailableError` that names the URL, the exact path and the
command ``nsync-bench weights fetch NAME``. Downloads stream to ``<file>.part`` (resumable with
HTTP Range), are checksum-verified and only then moved into place, so a half-written or tampered
file is never used. Verified hashes are cached in a ``<file>.sha256`` sidecar keyed by size and
mtime, because rehashing a 2.4 GB checkpoint on every run costs seconds.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from nsync_bench.config.run_config import CLIP_MODEL
from nsync_bench.download import DownloadError, download, file_sha256
from nsync_bench.errors import ModelNotAvailableError, NsyncBenchError, unknown_name
from nsync_bench.io import atomic_write_json
from nsync_bench.models.hub_models import CLIP_336
from nsync_bench.paths import cache_dir
from nsync_bench.progress import NullProgress, Progress

logger = logging.getLogger(__name__)

WEIGHTS_DIR_ENV = "NSYNC_BENCH_WEIGHTS_DIR"
CSD_REVISION = "5bc26a6fb0487f3f00a2a7313135103a005b1b67"  # tomg-group-umd/CSD-ViT-L, the commit the sha256 is of


class WeightsError(NsyncBenchError, ValueError):
    """A weights file exists but is not the expected one (wrong layout, keys or format)."""


class ChecksumError(WeightsError):
    """A weights file's sha256 differs from the registered one."""


@dataclass(frozen=True)
class WeightFile:
    """One official weights file (``kind="file"``) or hub snapshot (``kind="hub"``)."""

    name: str
    url: str
    filename: str  # file (or, for hub entries, directory) name inside the weights dir
    sha256: str | None = None  # full hex digest, None when unknown
    sha256_prefix: str | None = None  # torch-hub style 8-hex prefix embedded in the file name
    sha256_note: str = ""  # provenance caveat of ``sha256`` shown on a mismatch
    size: int | None = None
    description: str = ""
    license: str = ""
    kind: Literal["file", "hub"] = "file"
    repo_id: str | None = None
    allow_patterns: tuple[str, ...] = ()
    revision: str | None = None  # the repository commit a hub file or snapshot is pinned to

    @property
    def checksum_known(self) -> bool:
        """Whether a download can be verified: a full sha256, a torch-hub prefix, or a pinned hub commit."""
        return bool(self.sha256 or self.sha256_prefix or (self.kind == "hub" and self.revision))


REGISTRY: dict[str, WeightFile] = {
    entry.name: entry
    for entry in (
        WeightFile(
            name="inception-clean",
            url="https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
            filename="inception-2015-12-05.pt",
            description="clean-fid's TorchScript Inception-v3 (TF FID graph); modes clean / legacy_tensorflow",
            license="NVIDIA port of the TF 2015-12-05 Inception graph (Apache-2.0 upstream); check NVIDIA's terms",
        ),
        WeightFile(
            name="inception-fid",
            url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
            filename="pt_inception-2015-12-05-6726825d.pth",
            sha256_prefix="6726825d",
            description="pytorch-fid's FID Inception weights; clean-fid mode legacy_pytorch",
            license="Apache-2.0 (pytorch-fid)",
        ),
        WeightFile(
            name="inception-torchvision",
            url="https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth",
            filename="inception_v3_google-0cc3c7bd.pth",
            sha256_prefix="0cc3c7bd",
            description="torchvision ImageNet Inception-v3, used by gan-metrics-pytorch (NSYNC's FID/KID)",
            license="BSD-3-Clause (torchvision); ImageNet terms apply to the training data",
        ),
        WeightFile(
            name="csd-vit-l",
            url=f"https://huggingface.co/tomg-group-umd/CSD-ViT-L/resolve/{CSD_REVISION}/pytorch_model.bin",
            filename="pytorch_model.bin",
            revision=CSD_REVISION,
            # Unverified: from third-party code found by search (docs/metrics.md §6), not checked against
            # the hub. A mismatch is reported with both hashes; pass --sha256 to override knowingly.
            sha256="40e92fad63a361b8136100cd234c42d401ef9b34ff1748234318929ebcc7e7a1",
            sha256_note="unverified (taken from third-party code; see docs/metrics.md section 6, Weights)",
            size=2_438_228_893,
            description="CSD ViT-L style model checkpoint (learn2phoenix/CSD)",
            license="MIT (learn2phoenix/CSD); upstream warns the released weights differ from the paper's",
        ),
        WeightFile(
            name="clip-vit-l-14-336",
            url=f"https://huggingface.co/{CLIP_MODEL}",
            filename=CLIP_MODEL.rpartition("/")[2],
            kind="hub",
            repo_id=CLIP_MODEL,
            revision=CLIP_336.revision,
            size=CLIP_336.size,
            allow_patterns=("config.json", "model.safetensors", "preprocessor_config.json"),
            description="CLIP ViT-L/14@336 for CMMD, loaded with transformers like cmmd-pytorch",
            license="MIT (OpenAI CLIP)",
        ),
    )
}


def get_entry(name: str) -> WeightFile:
    if name not in REGISTRY:
        raise unknown_name("weights name", name, REGISTRY, "List them with `nsync-bench weights list`.")
    return REGISTRY[name]


def weights_dir(override: str | Path | None = None) -> Path:
    """Where metric weights live: ``override`` > ``$NSYNC_BENCH_WEIGHTS_DIR`` > ``cache_dir()/weights``."""
    return _weights_root(override)


def _weights_root(override: str | Path | None) -> Path:
    if override:
        return Path(override).expanduser().resolve()
    if os.environ.get(WEIGHTS_DIR_ENV):
        return Path(os.environ[WEIGHTS_DIR_ENV]).expanduser().resolve()
    return cache_dir() / "weights"


def weight_path(name: str, weights_dir: str | Path | None = None) -> Path:
    """The path the file (or hub snapshot directory) of ``name`` must have."""
    return _weights_root(weights_dir) / get_entry(name).filename


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def cached_sha256(path: str | Path) -> str:
    """sha256 of ``path``, reusing the ``<file>.sha256`` sidecar while size and mtime are unchanged.

    Symlinks (e.g. Hugging Face cache snapshots) are resolved so the sidecar sits beside the data.
    Writing the sidecar is best effort: a read-only directory only costs a rehash next time.
    """
    path = Path(path).resolve()
    stat = path.stat()
    sidecar = _sidecar(path)
    try:
        cached = json.loads(sidecar.read_text())
        if cached.get("size") == stat.st_size and cached.get("mtime_ns") == stat.st_mtime_ns:
            return str(cached["sha256"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    logger.info("hashing %s (%.1f MB; cached afterwards in %s)", path, stat.st_size / 1e6, sidecar.name)
    digest = file_sha256(path)
    _write_sidecar(path, digest)
    return digest


def _write_sidecar(path: Path, digest: str, pinned: str | None = None) -> None:
    """Record ``digest`` for the current size/mtime; ``pinned``: a hash the user accepted (fetch --sha256)."""
    stat = path.stat()
    record = {"sha256": digest, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if pinned:
        record["pinned"] = pinned.lower()
    try:
        atomic_write_json(_sidecar(path), record)
    except OSError as err:
        logger.debug("could not write %s: %s", _sidecar(path), err)


def _pinned(path: Path) -> str | None:
    """The user-accepted hash recorded by ``fetch(sha256=...)``, while the file is unchanged."""
    try:
        record = json.loads(_sidecar(path.resolve()).read_text())
        stat = path.stat()
        same = record.get("size") == stat.st_size and record.get("mtime_ns") == stat.st_mtime_ns
        return str(record["pinned"]) if same and record.get("pinned") else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _check_digest(entry: WeightFile, digest: str, path: Path, sha256: str | None = None) -> None:
    """Raise :class:`ChecksumError` when ``digest`` contradicts the known full hash or prefix."""
    expected = (sha256 or entry.sha256 or "").lower()
    prefix = (entry.sha256_prefix or "").lower()
    if expected and digest != expected:
        shown = expected
    elif not expected and prefix and not digest.startswith(prefix):
        shown = f"{prefix}… (prefix)"
    else:
        return
    note = f" Note: the registered hash is {entry.sha256_note}." if entry.sha256_note and not sha256 else ""
    raise ChecksumError(
        f"{path} is not the expected {entry.name!r} weights: sha256 expected {shown}, got {digest}.{note} "
        f"Fix: delete it and run `nsync-bench weights fetch {entry.name}` (source: {entry.url}); if you trust "
        f"this file, accept its hash with `nsync-bench weights fetch {entry.name} --sha256 {digest}`."
    )


def _missing(entry: WeightFile, path: Path, reason: str = "missing") -> ModelNotAvailableError:
    size = f" ({entry.size / 1e9:.2f} GB)" if entry.size else ""
    if entry.kind == "hub":
        revision = f" --revision {entry.revision}" if entry.revision else ""
        manual = (
            f"`hf download {entry.repo_id}{revision} {' '.join(entry.allow_patterns)} --local-dir {path}` "
            "(older huggingface_hub: `huggingface-cli download` with the same arguments)"
        )
    else:
        manual = f"download {entry.url}{size} and place it at {path}"
    return ModelNotAvailableError(
        f"metric weights {entry.name!r} ({entry.description}) are {reason} at {path}. "
        f"Fix: run `nsync-bench weights fetch {entry.name}`, or on a connected machine {manual} "
        f"(set ${WEIGHTS_DIR_ENV} or --weights-dir to use another folder)."
    )


def require_weight(name: str, weights_dir: str | Path | None = None) -> Path:
    """The verified path of ``name``'s weights; a teaching error when missing or wrong."""
    entry = get_entry(name)
    path = weight_path(name, weights_dir)
    if entry.kind == "hub":
        has_weights = any(path.glob("*.safetensors")) or (path / "pytorch_model.bin").is_file()
        if not (path / "config.json").is_file() or not has_weights:
            raise _missing(entry, path, "missing or incomplete (need config.json and model weights)")
        return path
    if not path.is_file():
        raise _missing(entry, path)
    if entry.sha256 or entry.sha256_prefix:
        _check_digest(entry, cached_sha256(path), path, _pinned(path))
    return path


def fetch(
    name: str,
    weights_dir: str | Path | None = None,
    *,
    url: str | None = None,
    sha256: str | None = None,
    progress: Progress | None = None,
    opener: Callable[..., Any] = urllib.request.urlopen,
    force: bool = False,
    timeout: float = 60.0,
) -> Path:
    """Download ``name`` into the weights dir, verify it, and return its path.

    ``url`` and ``sha256`` override the registry (mirrors; a hash the registry lacks or has wrong —
    the accepted hash is recorded in the sidecar so :func:`require_weight` honours it later);
    ``opener`` exists so tests can serve files from a local server. An interrupted download
    leaves ``<file>.part``; the next call resumes it with an HTTP Range request (restarting when
    the server ignores Range). A wrong checksum deletes the ``.part`` and raises.
    """
    entry = get_entry(name)
    path = weight_path(name, weights_dir)
    if entry.kind == "hub":
        return _fetch_hub(entry, path)
    if path.is_file() and not force:
        digest = cached_sha256(path)
        _check_digest(entry, digest, path, sha256 or _pinned(path))
        if sha256:
            _write_sidecar(path.resolve(), digest, pinned=sha256)
        logger.info("%s already present at %s", name, path)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    source = url or entry.url
    progress = progress or NullProgress()
    digest = _download(source, part, path, entry, progress, opener, timeout)
    try:
        _check_digest(entry, digest, path, sha256)
    except ChecksumError:
        part.unlink(missing_ok=True)
        raise
    if not (sha256 or entry.sha256 or entry.sha256_prefix):
        logger.warning("%s has no registered checksum; downloaded file sha256=%s (pin it with --sha256)",
                       name, digest)
    os.replace(part, path)
    _write_sidecar(path, digest, pinned=sha256)
    logger.info("fetched %s -> %s (sha256=%s)", name, path, digest)
    return path


def _download(source: str, part: Path, final: Path, entry: WeightFile, progress: Progress,
              opener: Callable[..., Any], timeout: float) -> str:
    """Stream ``source`` into ``part`` (resuming it when present); return the sha256 of the whole.

    The transfer is :func:`nsync_bench.download.download`; its errors become
    :class:`ModelNotAvailableError` here, because a missing weights file is what callers handle.
    """
    retry = f"rerun `nsync-bench weights fetch {entry.name}` to resume from {part}"
    try:
        return download(source, part, label=entry.name, retry_hint=retry, expected_size=entry.size,
                        progress=progress, opener=opener, timeout=timeout)
    except DownloadError as err:
        message = str(err)
        if err.reason == "unreachable":
            message += f" On a connected machine download it and place it at {final}."
        raise ModelNotAvailableError(message) from err


def _fetch_hub(entry: WeightFile, path: Path) -> Path:
    """Snapshot a hub model's config and safetensors weights into ``path`` (no pickle files)."""
    from huggingface_hub import snapshot_download

    assert entry.repo_id is not None
    try:
        snapshot_download(entry.repo_id, revision=entry.revision, local_dir=path,
                          allow_patterns=list(entry.allow_patterns))
        if not any(path.glob("*.safetensors")):
            # Older repos ship only pytorch_model.bin; transformers reads it with weights_only=True.
            logger.warning("%s has no safetensors weights; fetching pytorch_model.bin", entry.repo_id)
            snapshot_download(entry.repo_id, revision=entry.revision, local_dir=path,
                              allow_patterns=["pytorch_model.bin"])
    except Exception as err:  # hub errors have no common base class across huggingface_hub versions
        raise ModelNotAvailableError(
            f"could not download {entry.repo_id} ({type(err).__name__}: {err}). Offline or HF_HUB_OFFLINE=1? "
            f"{_missing(entry, path, 'missing')}"
        ) from err
    return require_weight(entry.name, path.parent)
