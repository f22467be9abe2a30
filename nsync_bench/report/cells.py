"""Report cells: the runs a report row may pool are identical in everything but the seed.

A *cell* is the resolved config a run logged as MLflow params minus ``run.seed``, plus its data
identity (the ``data_identity.*`` params: image and caption digests, captioner), plus the run's
coordinates from its tags (for runs logged without params). Runs of one cell with the same seed
are repeats: only the latest counts. Two cells of one (profile, protocol, style, method) are two
rows: each is labelled by the keys whose values differ, e.g. ``ti (train.learning_rate=1e9)``,
except the one cell that agrees with the other methods of its style on those keys, which keeps the
plain method name (so ``nsync`` is still compared with the ``ti`` trained like it).

Columns added to the runs table: ``cell`` (16 hex digits), ``base_method`` (the method tag),
``variant`` (the differing keys and values, "" for the plain cell) and ``method`` (the label).
"""

from __future__ import annotations

import hashlib
import json

import pandas as pd

EXCLUDED_PARAMS = ("params.run.seed",)
COORDINATES = ["profile", "protocol", "style"]


def _params(frame: pd.DataFrame) -> list[str]:
    return sorted(c for c in frame.columns if c.startswith("params.") and c not in EXCLUDED_PARAMS)


def _value(value: object) -> str:
    return "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)


def cell_keys(frame: pd.DataFrame, coordinates: pd.DataFrame) -> pd.Series:
    """One digest per run of everything that defines its cell (params minus seed, coordinates, method)."""
    params = _params(frame)
    keys = []
    for (_, row), (_, coords) in zip(frame.iterrows(), coordinates.iterrows(), strict=True):
        payload = {**{c: _value(row[c]) for c in params}, **{c: _value(coords[c]) for c in [*COORDINATES, "method"]}}
        keys.append(hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16])
    return pd.Series(keys, index=frame.index)


def _short(value: str) -> str:
    return value[:8] if len(value) >= 32 and all(c in "0123456789abcdef" for c in value) else value


def label_cells(frame: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` (with ``cell`` and ``method``) with ``base_method``, ``variant`` and the labelled ``method``."""
    runs = runs.copy()
    runs["base_method"] = runs["method"]
    runs["variant"] = ""
    params = _params(frame)
    values = frame[params].map(_value) if params else pd.DataFrame(index=frame.index)
    values.index = runs.index
    for _, group in runs.groupby(COORDINATES, dropna=False):
        for method, cells in group.groupby("base_method"):
            first = cells.drop_duplicates("cell")
            if len(first) < 2:
                continue
            differing = [p for p in params if values.loc[first.index, p].nunique() > 1]
            others = values.loc[group.index[group["base_method"] != method]]
            plain = [i for i in first.index if _agrees(values.loc[i], differing, others)]
            for index in first.index:
                if len(plain) == 1 and index == plain[0]:
                    continue
                variant = ", ".join(f"{p.removeprefix('params.')}={_short(values.loc[index, p])}" for p in differing)
                same = cells.index[cells["cell"] == runs.loc[index, "cell"]]
                runs.loc[same, "variant"] = variant
                runs.loc[same, "method"] = f"{method} ({variant})"
    return runs


def _agrees(row: pd.Series, keys: list[str], others: pd.DataFrame) -> bool:
    """True when the other methods' runs all share ``row``'s value of every key (and there are some)."""
    if others.empty:
        return False
    return all((others[k] == row[k]).all() for k in keys)


def variant_pairs(runs: pd.DataFrame, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Each (candidate, baseline) pair again for every variant both methods have, e.g. data changed for both."""
    labels = set(runs["method"])
    extra = []
    for variant in sorted(set(runs["variant"]) - {""}):
        for candidate, baseline in pairs:
            pair = (f"{candidate} ({variant})", f"{baseline} ({variant})")
            if set(pair) <= labels:
                extra.append(pair)
    return extra
