"""The one reader and writer of PyTorch ``.pt`` files (model files, state_dicts, checkpoints).

Reading: a regular file only; then, before ``torch.load``, the sizes its zip central directory declares are
summed and refused beyond a budget relative to the file (``torch.save`` stores its members uncompressed, so a
real file declares about its own size; a 1 MB file of deflated zeros declaring 2 GB is a zip bomb); then
``torch.load(weights_only=True)``: nothing in the file is executed. Legacy (pre-zip, torch < 1.6) files are
refused: their storages declare sizes that are allocated before they are read. Every failure is one
``InputFileError`` line.

Writing: ``torch.save`` through a Python file object, so a full disk is an ``OSError`` (ENOSPC) that
connpack.atomic reports as a file error, not torch's RuntimeError.
"""

from __future__ import annotations

import errno
import os
import zipfile
from pathlib import Path

from connpack.errors import InputFileError
from connpack.files import regular_file, shown

MAX_EXPANSION = 4
"""Declared uncompressed bytes allowed per byte of file (torch's own files: about 1)."""
MIN_BUDGET = 64 << 20
"""Declared bytes always allowed, whatever the file size."""


def check_zip(path: str | os.PathLike) -> None:
    """Refuse a .pt whose zip members declare more bytes than the budget, or that is no zip at all."""
    path = Path(path)
    size = os.stat(path).st_size
    try:
        if not zipfile.is_zipfile(path):
            raise InputFileError(
                f"{shown(path)}: not a PyTorch zip file (legacy or foreign .pt files are refused; "
                "re-save it with torch.save in torch >= 1.6)"
            )
        with zipfile.ZipFile(path) as z:
            declared = sum(max(0, i.file_size) for i in z.infolist())
    except InputFileError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as e:
        raise InputFileError(f"{shown(path)}: not a readable PyTorch file ({type(e).__name__}: {e})") from None
    budget = max(MIN_BUDGET, MAX_EXPANSION * size)
    if declared > budget:
        raise InputFileError(
            f"{shown(path)}: its zip members declare {declared:,} bytes uncompressed from a "
            f"{size:,}-byte file (over the {budget:,}-byte budget: a compression bomb?)"
        )


def load(path: str | os.PathLike, *, map_location="cpu", what: str = "model file"):
    """``torch.load(path, weights_only=True)`` after the checks above; one-line InputFileError on failure."""
    import warnings

    import torch

    path = regular_file(path)
    check_zip(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except MemoryError:
        raise InputFileError(f"{shown(path)}: not a readable {what}: out of memory while loading it") from None
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        text = str(e).strip()
        msg = text.splitlines()[0] if text else type(e).__name__
        if "weights_only" in text or "Unsupported global" in text:
            msg = "it needs code execution to load (refused: only weights_only files are opened)"
        raise InputFileError(f"{shown(path)}: not a readable {what}: {msg}") from None


def save(obj, path: str | os.PathLike) -> None:
    """``torch.save(obj)`` into ``path`` (a temp file of connpack.atomic) through a Python file object."""
    import torch

    try:
        with open(path, "wb") as f:
            torch.save(obj, f)
    except RuntimeError as e:  # torch's zip writer reports a failed or short write (a full disk) this way
        cause = e.__context__ if isinstance(e.__context__, OSError) else None
        if cause is None:
            try:
                full = os.statvfs(os.path.dirname(os.path.abspath(path)) or ".").f_bavail == 0
            except OSError:
                full = False
            cause = OSError(
                errno.ENOSPC if full else errno.EIO,
                os.strerror(errno.ENOSPC) if full else f"write failed ({str(e).strip()[:120]})",
            )
        raise cause from None
