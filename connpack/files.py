"""The paths a command is given, checked before anything runs (pure Python: no torch, no numpy).

- ``regular_file``: an input must be a regular file (a FIFO would block forever, ``/dev/zero`` never ends,
  a directory is no file): one line, in the error class of the caller (3 input file by default, 5 data).
- ``check_outputs``: an output may not be an input nor another output of the same command (same path, a hard
  link or a symlink to it), and may not be an existing non-regular file (``--onnx /dev/null`` would replace
  the device node): usage error, exit 2, before any work.
- ``shown``: user-controlled text (paths, strings read from files) made safe for a terminal: control
  characters written as escapes (``\\x1b``), so no escape sequence reaches the terminal raw.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from connpack.errors import ConnpackError, InputFileError, SpecError


def shown(text: object) -> str:
    """``text`` with every non-printable character (ESC, CR, BEL, NUL, ...) written as a Python escape."""
    s = str(text)
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in s)


def regular_file(path: str | os.PathLike, error: type[ConnpackError] = InputFileError) -> Path:
    """``path`` if it is (a symlink to) a regular file; else ``error`` with one line saying what it is."""
    p = Path(path)
    try:
        mode = os.stat(p).st_mode
    except FileNotFoundError:
        raise error(f"{shown(p)}: no such file") from None
    except OSError as e:
        raise error(f"cannot read {shown(p)}: {e.strerror or e}") from None
    if stat.S_ISDIR(mode):
        raise error(f"{shown(p)}: is a directory, not a file")
    if not stat.S_ISREG(mode):
        kind = (
            "a FIFO"
            if stat.S_ISFIFO(mode)
            else "a device"
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket"
            if stat.S_ISSOCK(mode)
            else "not a regular file"
        )
        raise error(f"{shown(p)}: {kind}, not a regular file (refused: it could block or never end)")
    return p


def _identity(p: Path) -> tuple[str, tuple | None]:
    """(resolved path, (st_dev, st_ino) if the file exists)."""
    try:
        st = os.stat(p)
        ino = (st.st_dev, st.st_ino)
    except OSError:
        ino = None
    return os.path.realpath(p), ino


def check_outputs(inputs: Iterable[str | os.PathLike | None], outputs: Iterable[str | os.PathLike | None]) -> None:
    """Refuse (SpecError, exit 2) outputs that alias an input or each other, or that exist and are not
    regular files. ``None`` entries (options not given) are ignored."""
    ins = [(Path(p), _identity(Path(p))) for p in inputs if p is not None]
    seen: list[tuple[Path, tuple]] = []
    for out in (Path(p) for p in outputs if p is not None):
        ident = _identity(out)
        try:
            mode = os.stat(out).st_mode
        except OSError:
            mode = None
        if mode is not None and not stat.S_ISREG(mode):
            raise SpecError(f"output {shown(out)} exists and is not a regular file (refused: it would be replaced)")
        for label, others in (("the input", ins), ("another output", seen)):
            for other, oid in others:
                if ident[0] == oid[0] or (ident[1] is not None and ident[1] == oid[1]):
                    raise SpecError(
                        f"output {shown(out)} is {label} {shown(other)} (same file): refused, "
                        "it would be overwritten; choose another output path"
                    )
        seen.append((out, ident))
