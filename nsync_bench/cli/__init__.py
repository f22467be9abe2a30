"""The ``nsync-bench`` command line: thin verbs over library functions.

Nothing heavy is imported at module level: ``nsync-bench --help`` must not import torch,
diffusers or mlflow (each verb imports what it needs when it runs).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import typer
from rich.console import Console

from nsync_bench.errors import NsyncBenchError

app = typer.Typer(
    name="nsync-bench",
    help="Reproducibility benchmark for style personalization: TI, LoRA and NSYNC on shared seeds, tracked in MLflow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def setup_logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    handler = RichHandler(console=err_console, show_path=False, show_time=False)
    logging.basicConfig(level=logging.WARNING, handlers=[handler], format="%(message)s", force=True)
    logging.getLogger("nsync_bench").setLevel(logging.DEBUG if verbose else logging.INFO)


def teaching_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Print a user-fixable error as one red line and exit with status 2, without a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except NsyncBenchError as err:
            err_console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


# Verbs register themselves on ``app`` when their module is imported.
from nsync_bench.cli import bench as _bench  # noqa: E402,F401
from nsync_bench.cli import data as _data  # noqa: E402,F401
from nsync_bench.cli import metrics as _metrics  # noqa: E402,F401
from nsync_bench.cli import profiles as _profiles  # noqa: E402,F401
from nsync_bench.cli import report as _report  # noqa: E402,F401
from nsync_bench.cli import run as _run  # noqa: E402,F401
from nsync_bench.cli import sweep as _sweep  # noqa: E402,F401
from nsync_bench.cli import ui as _ui  # noqa: E402,F401
from nsync_bench.cli import weights as _weights  # noqa: E402,F401
from nsync_bench.cli import world as _world  # noqa: E402,F401


def main() -> None:
    app(prog_name="nsync-bench")


if __name__ == "__main__":
    sys.exit(main())
