"""Input conversion and validation shared by the metric functions.

Every metric takes either numpy arrays or torch tensors (any float dtype, any device, with or
without grad). They are converted here to C-contiguous float64 numpy arrays, so all metric
arithmetic is float64 whatever the caller passes in. Errors are :class:`~nsync_bench.errors.DataError`
(a ``ValueError``): they name the argument, what was wrong, and what is expected.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nsync_bench.errors import DataError

__all__ = ["as_float64", "as_sample_matrix", "check_finite", "check_same_dim"]


def as_float64(x: Any, name: str) -> np.ndarray:
    """``x`` (numpy array, torch tensor or nested sequence) as a float64 numpy array (a copy if needed)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor; torch is imported if one exists
        import torch

        if x.is_complex():
            raise DataError(f"{name} must be real-valued, got a complex tensor of dtype {x.dtype}.")
        x = x.detach().to(device="cpu", dtype=torch.float64).numpy()
    arr = np.asarray(x)
    if np.iscomplexobj(arr):
        raise DataError(f"{name} must be real-valued, got a complex array of dtype {arr.dtype}.")
    try:
        return np.ascontiguousarray(arr, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name} cannot be converted to a float64 array ({exc}).") from exc


def check_finite(arr: np.ndarray, name: str) -> None:
    """Raise unless every entry of ``arr`` is finite."""
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))
        where = tuple(int(i) for i in bad[0])
        raise DataError(
            f"{name} contains {len(bad)} non-finite value(s) (NaN or inf), the first at index {where}; "
            "drop or fix those samples before computing the metric."
        )


def as_sample_matrix(x: Any, name: str, *, min_samples: int) -> np.ndarray:
    """Validate a set of samples: a finite 2-D ``(n_samples, dim)`` array with ``n_samples >= min_samples``.

    Returns it as a C-contiguous float64 numpy array.
    """
    arr = as_float64(x, name)
    if arr.ndim != 2:
        raise DataError(
            f"{name} must be a 2-D (n_samples, dim) array, got {arr.ndim}-D with shape {arr.shape}; "
            "stack one feature vector per row."
        )
    n, d = arr.shape
    if d < 1:
        raise DataError(f"{name} has feature dimension 0 (shape {arr.shape}); need at least 1 column.")
    if n < min_samples:
        raise DataError(f"{name} has {n} sample(s); this metric needs at least {min_samples}.")
    check_finite(arr, name)
    return arr


def check_same_dim(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    """Raise unless the last dimensions (feature lengths) of ``a`` and ``b`` agree."""
    if a.shape[-1] != b.shape[-1]:
        raise DataError(
            f"feature dimensions differ: {name_a} has dim {a.shape[-1]}, {name_b} has dim {b.shape[-1]}; "
            "both sets must come from the same extractor."
        )
