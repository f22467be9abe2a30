"""The ``nsync-bench`` Typer app, its command groups, and what every command shares, set once here:
one-line teaching errors (no traceback unless ``--debug``) and ``--verbose``.

Verb modules register their commands on these apps; ``cli/main.py`` imports them all. Nothing heavy
is imported here: ``nsync-bench --help`` must not import torch, diffusers or mlflow.
"""

from __future__ import annotations

import inspect
import logging
import os
import signal
import threading
import typing
from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from nsync_bench.errors import NsyncBenchError

console = Console()
err_console = Console(stderr=True)

VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Log debug messages too.")]
_Command = TypeVar("_Command", bound=Callable[..., Any])
_DEBUG = {"on": False}  # --debug (or NSYNC_BENCH_DEBUG=1): unexpected errors show their traceback


def setup_logging(verbose: bool) -> None:
    """Library logs through Rich on stderr: INFO by default, DEBUG with ``--verbose``."""
    from rich.logging import RichHandler

    handler = RichHandler(console=err_console, show_path=False, show_time=False)
    logging.basicConfig(level=logging.WARNING, handlers=[handler], format="%(message)s", force=True)
    logging.getLogger("nsync_bench").setLevel(logging.DEBUG if verbose else logging.INFO)


def debugging() -> bool:
    return _DEBUG["on"] or os.environ.get("NSYNC_BENCH_DEBUG", "") not in ("", "0")


def _print_error(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)


def _is_cli_control_flow(err: Exception) -> bool:
    """Exit, Abort and usage errors of Typer or Click (Typer vendors its own Click): theirs to handle."""
    return type(err).__module__.split(".")[0] in ("typer", "click")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def teaching_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Print a user-fixable error as one red line and exit (status 2, or the error's ``exit_code``), no traceback.

    SIGTERM is handled like Ctrl-C, so a command stopped by ``kill`` or a scheduler cleans up as one stopped
    from the keyboard (temporary folders removed, checkpoints saved): an interrupted command exits 130."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _interrupt)
        try:
            return func(*args, **kwargs)
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]; nothing half-written was kept. Run the same command again "
                              "to continue.", highlight=False, soft_wrap=True)
            raise typer.Exit(130) from None
        except NsyncBenchError as err:
            _print_error(str(err))
            raise typer.Exit(getattr(err, "exit_code", 2)) from None
        except OSError as err:  # a path the user gave (or its parent) is unusable: no traceback, the path
            if debugging():
                raise
            where = f"{err.filename}: " if err.filename else ""
            _print_error(f"{where}{err.strerror or err}. Check that path and the folder options (--runs-dir, "
                         "--data-root, --tracking-uri, --out) or their environment variables; --debug shows the "
                         "traceback.")
            raise typer.Exit(2) from None
        except Exception as err:
            if _is_cli_control_flow(err) or debugging():
                raise
            _print_error(f"unexpected {type(err).__name__}: {err}. This may be a bug in nsync-bench: rerun with "
                         "--debug for the traceback and report it.")
            raise typer.Exit(1) from None

    return wrapper


def with_verbose(func: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command the ``--verbose/-v`` option and set up logging before it runs.

    The command itself does not declare ``verbose``; its signature is extended here (with resolved
    annotations, so Typer needs no access to the verb module's globals)."""
    hints = typing.get_type_hints(func, include_extras=True)
    signature = inspect.signature(func)
    parameters = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values()]
    parameters.append(inspect.Parameter("verbose", inspect.Parameter.KEYWORD_ONLY, default=False,
                                        annotation=VerboseOption))

    @wraps(func)
    def wrapper(*args: Any, verbose: bool = False, **kwargs: Any) -> Any:
        setup_logging(verbose)
        return func(*args, **kwargs)

    # Typer reads __signature__ (inspect honours it); functions do not declare the attribute.
    wrapper.__signature__ = signature.replace(parameters=parameters, return_annotation=None)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    return wrapper


class CommandGroup(typer.Typer):
    """A Typer app whose every command gets ``--verbose`` and teaching errors without asking."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[_Command], _Command]:
        register = super().command(*args, **kwargs)

        def decorator(func: _Command) -> _Command:
            register(teaching_errors(with_verbose(func)))
            return func

        return decorator


app = CommandGroup(
    name="nsync-bench",
    help="Reproducibility benchmark for style personalization: TI, LoRA and NSYNC on shared seeds, tracked in MLflow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = CommandGroup(help="Datasets: fetch, import, validate, restore, list; captions, negative sets.",
                        no_args_is_help=True)
weights_app = CommandGroup(help="Metric weights: list what is needed and where, fetch it.", no_args_is_help=True)
world_app = CommandGroup(help="The toy world: build its base model, probe and sample grids.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(weights_app, name="weights")
app.add_typer(world_app, name="world")


@app.callback()
def _global_options(
    debug: bool = typer.Option(False, "--debug", help="Show the Python traceback of unexpected errors."),
) -> None:
    """Reproducibility benchmark for style personalization: TI, LoRA and NSYNC on shared seeds, tracked in MLflow."""
    _DEBUG["on"] = debug
