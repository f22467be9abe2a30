"""``nsync-bench data ...``: datasets, captions and negative sets."""

from __future__ import annotations

import typer

from nsync_bench.cli import app

data_app = typer.Typer(help="Datasets: fetch, import, validate, list; captions, negative sets.", no_args_is_help=True)
app.add_typer(data_app, name="data")

from nsync_bench.cli import captions as _captions  # noqa: E402,F401
from nsync_bench.cli import datasets as _datasets  # noqa: E402,F401

# Verbs of the data group register themselves on ``data_app`` when imported.
from nsync_bench.cli import negatives as _negatives  # noqa: E402,F401
