"""Shared CLI pieces: option aliases, the console, and the error boundary (one line, one exit code)."""

from __future__ import annotations

import functools
import os
import signal
import sys
import traceback
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from connpack.errors import INTERNAL_EXIT_CODE, ConnpackError
from connpack.files import shown

try:  # typer >= 0.2x vendors click; its usage errors derive from TyperException
    from typer import TyperException as _UsageError
except ImportError:  # older typer on click
    from click import ClickException as _UsageError

# Piped output (make demo | tee, CI logs) gets a wide fixed width instead of rich's 80-column default.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
err_console = Console(stderr=True, highlight=False)

DataDir = Annotated[
    Optional[Path], typer.Option("--data-dir", help="dataset folder (default: $CONNPACK_DATA or ~/.cache/connpack)")
]
JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]
MAX_WEIGHTS_DEFAULT = 2**31  # = connpack.packing.DEFAULT_MAX_WEIGHTS (not imported: the CLI loads lazily)
MaxWeights = Annotated[
    int,
    typer.Option(
        "--max-weights",
        min=1,
        help="refuse a .cpk whose network has more weights (all tensors' elements) than this, before decoding it",
    ),
]


def debug_enabled() -> bool:
    return os.environ.get("CONNPACK_DEBUG", "") not in ("", "0")


def safe(text: object) -> str:
    """User-controlled text (a path, a string read from a file) for rich: markup escaped, control
    characters shown as escapes."""
    return escape(shown(text))


def fail(message: str, code: int) -> None:
    err_console.print(f"connpack: error: {shown(message)}", markup=False, soft_wrap=True)
    raise typer.Exit(code)


class Terminated(BaseException):
    """SIGTERM or SIGHUP, raised in the main thread like KeyboardInterrupt so that every ``finally`` runs
    (atomic writes remove their temp files)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _terminate(signum, frame):
    raise Terminated(signum)


def handle_signals() -> None:
    """SIGTERM and SIGHUP clean up like SIGINT (exit 128 + signal number)."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _terminate)


class ConnpackGroup(TyperGroup):
    """typer's group with connpack's error contract: a usage error is one line on stderr and exit 2 (3 when a
    path argument cannot be read), and third-party warnings are silenced (shown with --debug)."""

    def make_context(self, info_name, args, parent=None, **extra):
        with _usage_errors():
            return super().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx):
        with _usage_errors(), warnings.catch_warnings():
            if not debug_enabled():
                warnings.simplefilter("ignore")
            return super().invoke(ctx)


class _usage_errors:
    def __enter__(self):
        return self

    def __exit__(self, kind, e, tb):
        if not isinstance(e, _UsageError) or type(e).__name__ == "NoArgsIsHelpError":  # that one prints the help
            return False
        param_type = getattr(getattr(e, "param", None), "type", None)
        code = 3 if type(param_type).__name__ == "Path" else 2  # typer's exists=True / readable=True checks
        ctx = getattr(e, "ctx", None)
        where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        fail(" ".join(e.format_message().split()) + where, code)


def errors(fn):
    """Turn every exception into one line on stderr and a per-class exit code (traceback with --debug)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except ConnpackError as e:
            if debug_enabled():
                traceback.print_exc()
            fail(" ".join(str(e).split()), e.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except Terminated as e:
            fail(f"terminated by {signal.Signals(e.signum).name}", 128 + e.signum)
        except MemoryError:
            fail("out of memory", INTERNAL_EXIT_CODE)
        except Exception as e:  # a bug: still one line unless --debug
            if debug_enabled():
                traceback.print_exc()
            msg = " ".join(str(e).split())[:300]
            fail(
                f"internal error: {type(e).__name__}: {msg} (rerun with --debug for the traceback)", INTERNAL_EXIT_CODE
            )

    return wrapper


def out_path(given: Optional[Path], source: Path, suffix: str) -> Path:
    return given if given is not None else source.with_suffix(suffix)


def stdout_is_tty() -> bool:
    return sys.stdout.isatty()
