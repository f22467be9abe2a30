"""The GPU check's wheelhouse: exactly the wheels its target machine lacks, for that machine's Python.

The check's target (docs/scale.md, "The GPU check") has no package index and takes at most
:data:`LIMIT_BYTES` of wheels. It already has torch, torchvision, transformers, peft, accelerate, pandas,
scipy, matplotlib, timm, typer and rich (:data:`TARGET_PRESENT`), and with them everything they depend
on. The wheelhouse holds what the check imports (:data:`CHECK_ROOTS`, kept honest by a test that runs
the check and lists the distributions it imported) and its dependencies, minus all of that: the
project's own wheel, diffusers, pydantic, open_clip_torch, clean-fid, platformdirs and the few small
packages they pull in. Versions are this machine's (the ones the tests passed with); wheels are fetched
for the target's Python and platform (``--python-version``, ``--platform``), never built for this one.

    python -m nsync_bench.perf.wheelhouse --out wheelhouse --python-version 3.12 --platform manylinux2014_x86_64
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path

LIMIT_BYTES = 64 * 2**20
TARGET_PRESENT = ("torch", "torchvision", "transformers", "peft", "accelerate", "pandas", "scipy", "matplotlib",
                  "timm", "typer", "rich")
# What the GPU check imports besides the package itself (whose wheel is built, never its declared dependencies:
# MLflow and the rest stay behind): models and config, the extractors' networks (open_clip's ViT for CSD,
# clean-fid's Inception blocks), the tokenizer's BPE file (open_clip), locations (platformdirs).
CHECK_ROOTS = ("diffusers", "transformers", "peft", "safetensors", "huggingface-hub", "pydantic",
               "typer", "rich", "platformdirs", "pillow", "numpy", "open-clip-torch", "clean-fid", "torchvision")
# Known absent there even where this machine's version of a present package requires one of them (typer
# requires pydantic in recent releases, the target's older typer does not): never counted as present.
TARGET_ABSENT = ("diffusers", "mlflow", "pydantic", "open-clip-torch", "clean-fid", "platformdirs", "submitit")
# Never carried: the target's own torch stack (a CUDA build) and what comes with it.
NEVER = ("torch", "torchvision", "torchaudio", "triton", "nvidia-", "cuda-")
DEFAULT_PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_28_x86_64")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements(name: str) -> list[str]:
    from packaging.requirements import Requirement

    names = []
    for text in metadata.distribution(name).requires or []:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            names.append(normalize(requirement.name))
    return names


def closure(roots: Iterable[str], requires: Callable[[str], list[str]] = _requirements,
            installed: Callable[[str], bool] | None = None) -> set[str]:
    """``roots`` and everything they require (unconditionally), by normalized name; uninstalled names are kept
    but not followed (``installed`` decides; default: importlib.metadata finds them)."""
    def is_installed(name: str) -> bool:
        try:
            metadata.distribution(name)
        except metadata.PackageNotFoundError:
            return False
        return True

    installed = installed or is_installed
    seen: set[str] = set()
    todo = [normalize(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if installed(name):
            todo.extend(requires(name))
    return seen


def plan(roots: Iterable[str] = CHECK_ROOTS, present: Iterable[str] = TARGET_PRESENT,
         absent: Iterable[str] = TARGET_ABSENT, requires: Callable[[str], list[str]] = _requirements,
         installed: Callable[[str], bool] | None = None) -> list[str]:
    """The distributions the wheelhouse must carry: the check's closure minus the target's (``absent`` never
    counts as the target's), never torch's stack."""
    missing = {normalize(name) for name in absent}

    def requires_there(name: str) -> list[str]:
        return [r for r in requires(name) if r not in missing]

    needed = closure(roots, requires, installed) - closure(present, requires_there, installed)
    return sorted(n for n in needed if not n.startswith(NEVER))


def pins(names: Iterable[str]) -> list[str]:
    """``name==version`` of this machine's installed distributions."""
    return [f"{name}=={metadata.version(name)}" for name in names]


def build(out: Path, *, python_version: str, platforms: Iterable[str], names: list[str] | None = None,
          extra: Iterable[str] = (), project: Path | None = None, limit: int = LIMIT_BYTES) -> tuple[list[str], int]:
    """Download the wheels of :func:`plan` for the target and build the project's; fail above ``limit``.
    Returns the wheels' names and their total size in bytes."""
    names = plan() if names is None else names
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.whl"):
        old.unlink()
    platform_args = [arg for platform in platforms for arg in ("--platform", platform)]
    python_args = ["--python-version", python_version, "--implementation", "cp"]
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "download", "--no-deps", "--only-binary=:all:", *python_args, *platform_args,
                    "-d", str(out), *pins(names), *extra], check=True)
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(out), str(project or Path.cwd())], check=True)
    wheels = sorted(out.glob("*.whl"))
    size = sum(w.stat().st_size for w in wheels)
    if size > limit:
        raise SystemExit(f"wheelhouse {out} holds {size / 2**20:.1f} MiB, over the {limit / 2**20:.0f} MiB that can "
                         f"travel with the check: {[w.name for w in wheels]}")
    return [w.name for w in wheels], size


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("wheelhouse"))
    parser.add_argument("--python-version", default="3.12", help="The target's Python (default 3.12).")
    parser.add_argument("--platform", action="append", dest="platforms",
                        help=f"Wheel platform tag, repeatable (default: {', '.join(DEFAULT_PLATFORMS)}).")
    parser.add_argument("--present", nargs="*", default=list(TARGET_PRESENT),
                        help="Distributions the target already has (with their dependencies).")
    parser.add_argument("extra", nargs="*", help="Extra requirements to carry, e.g. a pinned package.")
    args = parser.parse_args(argv)
    names = plan(present=args.present)
    wheels, size = build(args.out, python_version=args.python_version, platforms=args.platforms or DEFAULT_PLATFORMS,
                         names=names, extra=args.extra)
    print(f"wheelhouse {args.out}: {len(wheels)} wheels, {size / 2**20:.1f} MiB (limit {LIMIT_BYTES / 2**20:.0f} MiB) "
          f"for Python {args.python_version}: {', '.join(wheels)}")


if __name__ == "__main__":
    main()
