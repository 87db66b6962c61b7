"""Shared CLI pieces: option aliases, the console, and the error boundary (one line, one exit code)."""
from __future__ import annotations

import functools
import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from connpack.errors import INTERNAL_EXIT_CODE, ConnpackError

# Piped output (make demo | tee, CI logs) gets a wide fixed width instead of rich's 80-column default.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
err_console = Console(stderr=True, highlight=False)

DataDir = Annotated[Optional[Path], typer.Option("--data-dir", help="dataset folder (default: $CONNPACK_DATA or ~/.cache/connpack)")]
JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]
MAX_WEIGHTS_DEFAULT = 2**31  # = connpack.packing.DEFAULT_MAX_WEIGHTS (not imported: the CLI loads lazily)
MaxWeights = Annotated[int, typer.Option("--max-weights", min=1, help="refuse a .cpk whose network has more "
                                         "weights (all tensors' elements) than this, before decoding it")]


def debug_enabled() -> bool:
    return os.environ.get("CONNPACK_DEBUG", "") not in ("", "0")


def fail(message: str, code: int) -> None:
    err_console.print(f"connpack: error: {message}", markup=False, soft_wrap=True)
    raise typer.Exit(code)


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
        except MemoryError:
            fail("out of memory", INTERNAL_EXIT_CODE)
        except Exception as e:  # a bug: still one line unless --debug
            if debug_enabled():
                traceback.print_exc()
            msg = " ".join(str(e).split())[:300]
            fail(f"internal error: {type(e).__name__}: {msg} (rerun with --debug for the traceback)", INTERNAL_EXIT_CODE)

    return wrapper


def out_path(given: Optional[Path], source: Path, suffix: str) -> Path:
    return given if given is not None else source.with_suffix(suffix)


def stdout_is_tty() -> bool:
    return sys.stdout.isatty()
