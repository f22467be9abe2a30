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

import click
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


_DEBUG = {"on": False}  # --debug (or NSYNC_BENCH_DEBUG=1): unexpected errors show their traceback


@app.callback()
def _global_options(
    debug: bool = typer.Option(False, "--debug", help="Show the Python traceback of unexpected errors."),
) -> None:
    """Reproducibility benchmark for style personalization: TI, LoRA and NSYNC on shared seeds, tracked in MLflow."""
    _DEBUG["on"] = debug


def _debugging() -> bool:
    import os

    return _DEBUG["on"] or os.environ.get("NSYNC_BENCH_DEBUG", "") not in ("", "0")


def teaching_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Print a user-fixable error as one red line and exit (status 2, or the error's ``exit_code``), no traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except NsyncBenchError as err:
            err_console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
            raise typer.Exit(getattr(err, "exit_code", 2)) from None
        except (typer.Exit, typer.Abort, click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except OSError as err:  # a path the user gave (or its parent) is unusable: no traceback, the path
            if _debugging():
                raise
            where = f"{err.filename}: " if err.filename else ""
            err_console.print(f"[bold red]error:[/] {where}{err.strerror or err}. Check that path and the folder "
                              "options (--runs-dir, --data-root, --tracking-uri, --out) or their environment "
                              "variables; --debug shows the traceback.", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except Exception as err:
            if _debugging():
                raise
            err_console.print(f"[bold red]error:[/] unexpected {type(err).__name__}: {err}. This may be a bug in "
                              "nsync-bench: rerun with --debug for the traceback and report it.", highlight=False,
                              soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper


# Verbs register themselves on ``app`` when their module is imported.
from nsync_bench.cli import bench as _bench  # noqa: E402,F401
from nsync_bench.cli import data as _data  # noqa: E402,F401
from nsync_bench.cli import export as _export  # noqa: E402,F401
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
