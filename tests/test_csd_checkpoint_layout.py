"""The public CSD checkpoint's layout loads through the project's weights-only reader, and nothing else does.

``tomg-group-umd/CSD-ViT-L``'s ``pytorch_model.bin`` is a training checkpoint written under NumPy 1.x: the
model's ``state_dict`` (DDP's ``module.`` prefix) beside optimizer states and the run's ``argparse.Namespace``,
which hold NumPy scalars (pickled as ``numpy.core.multiarray.scalar``) and dtypes. The file is written here the
same way, at a tiny architecture, with a pickler that names NumPy's scalar constructor as NumPy 1.x did (this
machine has NumPy 2, which would write ``numpy._core``).
"""

from __future__ import annotations

import argparse
import io
import os
import pickle
import pickletools
import types

import numpy as np
import pytest
import torch

from nsync_bench.metrics.extractors.csd import CSDExtractor, CSDNetwork, checkpoint_globals, load_csd_network
from nsync_bench.metrics.weights import WeightsError

TINY = {"width": 32, "layers": 2, "heads": 4, "patch_size": 8, "image_size": 32, "output_dim": 16}
_SCALAR = np.float64(0).__reduce__()[0]  # NumPy's scalar-from-bytes constructor, wherever it lives


class _NumPy1Pickler(pickle._Pickler):  # the pure-Python pickler lets one global's name be chosen
    def save_global(self, obj, name=None):
        if obj is _SCALAR:
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\nscalar\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


NUMPY1 = types.SimpleNamespace(Pickler=_NumPy1Pickler, __name__="numpy1_pickle")


def _state() -> dict[str, torch.Tensor]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        network = CSDNetwork(**TINY)
        with torch.no_grad():
            network.last_layer_style.add_(torch.randn_like(network.last_layer_style))
    return network.state_dict()


def _optimizer_state(params: list[torch.Tensor]) -> dict:
    """An optimizer state dict whose hyperparameters came from NumPy (as when lr is computed with NumPy)."""
    optimizer = torch.optim.AdamW([torch.nn.Parameter(p.clone()) for p in params[:2]], lr=1e-4)
    for p in optimizer.param_groups[0]["params"]:
        p.grad = torch.ones_like(p)
    optimizer.step()
    state = optimizer.state_dict()
    state["param_groups"][0]["lr"] = np.float64(3e-5)
    state["param_groups"][0]["initial_lr"] = np.float64(3e-5)
    return state


def write_public_layout(path, state: dict[str, torch.Tensor], *, extra: object = None) -> None:
    args = argparse.Namespace(arch="vit_large", lr=np.float64(3e-5), batch_size=np.int64(64), seed=np.int64(0),
                              feature_dtype=np.dtype("float64"), index_dtype=np.dtype("int64"), lambda_s=1.0)
    checkpoint = {"model_state_dict": {f"module.{k}": v for k, v in state.items()},
                  "opt_bb": _optimizer_state(list(state.values())), "opt_proj": _optimizer_state(list(state.values())),
                  "iter": np.int64(99999), "epoch": np.int64(12), "args": args}
    if extra is not None:
        checkpoint["extra"] = extra
    torch.save(checkpoint, path, pickle_module=NUMPY1, pickle_protocol=2)


def _pickled_globals(path) -> set[str]:
    import zipfile

    with zipfile.ZipFile(path) as archive:
        data = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    out = io.StringIO()
    pickletools.dis(data, out=out)
    return {line.split("GLOBAL", 1)[1].strip().strip("'").replace(" ", ".")
            for line in out.getvalue().splitlines() if " GLOBAL " in line}


def test_the_written_file_has_the_public_layout(tmp_path):
    path = tmp_path / "pytorch_model.bin"
    write_public_layout(path, _state())
    names = _pickled_globals(path)
    assert {"numpy.core.multiarray.scalar", "numpy.dtype", "argparse.Namespace"} <= names
    assert not any(n.startswith("numpy._core") for n in names)  # NumPy 1.x names, as in the public file
    with pytest.raises(pickle.UnpicklingError):  # torch's own default allow-list refuses it
        torch.load(path, weights_only=True)


def test_the_public_layout_loads_weights_only(tmp_path):
    state = _state()
    path = tmp_path / "pytorch_model.bin"
    write_public_layout(path, state)
    network = load_csd_network(path, **TINY)
    loaded = network.state_dict()
    assert set(loaded) == set(state) and all(torch.equal(loaded[k], v) for k, v in state.items())
    extractor = CSDExtractor.from_file(path, **TINY)
    assert extractor.embed(torch.zeros(1, 3, 32, 32)).shape == (1, 16)


class _Payload:
    """A class whose unpickling would call os.system: the loader must refuse before calling anything."""

    def __reduce__(self):
        return os.system, ("touch PWNED",)


@pytest.mark.parametrize("extra", [_Payload(), types.SimpleNamespace(a=1)], ids=["os.system", "another-class"])
def test_anything_beyond_the_layout_is_refused_with_its_name(tmp_path, extra, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "pytorch_model.bin"
    write_public_layout(path, _state(), extra=extra)
    with pytest.raises(WeightsError, match=r"cannot be read safely.*(posix\.system|os\.system|SimpleNamespace)"):
        load_csd_network(path, **TINY)
    assert not (tmp_path / "PWNED").exists()


def test_the_allow_list_holds_only_containers_dtypes_and_the_scalar_constructor():
    allowed = [item[0] if isinstance(item, tuple) else item for item in checkpoint_globals()]
    for obj in allowed:
        if obj is _SCALAR:
            continue
        assert isinstance(obj, type), obj  # classes only: building one runs no user code
        assert obj is argparse.Namespace or issubclass(obj, np.dtype) or obj is np.dtype
    names = {item[1] for item in checkpoint_globals() if isinstance(item, tuple)}
    assert names == {"numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar"}
