"""Atomic file writes: a hidden temp file ``.<name>.<random>.tmp`` in the target's directory, fsync, rename
(os.replace), fsync of the directory. The target is either absent, its old content, or the complete new file;
on an error the temp file is removed (only a killed process can leave one behind).

``atomic_paths`` does the same for the several outputs of one command, all or none: every temp file is made
first (an unwritable target fails before any work), the block writes them, and only when it succeeds are they
renamed over their targets; on any failure every temp file is removed and no target is touched. ``group`` is
the same with outputs that may be added inside the block.
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from connpack.errors import InputFileError


def _fsync_dir(folder: Path) -> None:
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP received inside the block are delivered when it ends, so that a temp file
    is never made without being recorded, nor a group's renames split (main thread only: elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    sigs = [s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]
    old = {sig: signal.signal(sig, lambda signum, frame: pending.append(signum)) for sig in sigs}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        if pending:
            signal.raise_signal(pending[0])


def _reserve(target: Path) -> str:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes it 0600; the target gets the usual permissions
    finally:
        os.close(fd)
    return tmp


class Group:
    """The temp files of one command's outputs (``group``): ``path(target)`` reserves one beside its target
    (or returns the one already reserved for it)."""

    def __init__(self):
        self.targets: list[Path] = []
        self.tmps: list[str] = []

    def path(self, target: str | os.PathLike) -> Path:
        target = Path(target)
        if target in self.targets:
            return Path(self.tmps[self.targets.index(target)])
        with _signals_deferred():
            self.tmps.append(_reserve(target))
            self.targets.append(target)
        return Path(self.tmps[-1])


@contextmanager
def group(*paths: str | os.PathLike) -> Iterator[Group]:
    """A Group with a temp file reserved for each of ``paths`` up front (an unwritable target fails before any
    work); the block may add more outputs with ``group.path(target)`` (a file whose need is known only once
    it is written, e.g. an ONNX graph's external data). When the block succeeds, fsync them all, then rename
    each over its target. Any failure removes every temp file and touches no target."""
    g = Group()
    where = Path(paths[0]) if paths else Path(".")
    try:
        for target in paths:
            where = Path(target)
            g.path(target)
        where = None  # inside the block: the failing target is known only from the error's file name
        yield g
        tmps, targets = g.tmps, g.targets
        for tmp, target in zip(tmps, targets):
            where = target
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        with _signals_deferred():
            for i, (tmp, target) in enumerate(zip(tmps, targets)):
                where = target
                os.replace(tmp, target)
                tmps[i] = ""
        for folder in dict.fromkeys(t.parent for t in targets):
            _fsync_dir(folder)
    except OSError as e:
        if e.filename is not None and os.fspath(e.filename) in g.tmps:
            where = g.targets[g.tmps.index(os.fspath(e.filename))]
        what = where if where is not None else ", ".join(map(str, g.targets or paths))
        raise InputFileError(f"cannot write {what}: {e.strerror or e}") from None
    finally:
        with _signals_deferred():
            for tmp in g.tmps:
                if tmp and os.path.lexists(tmp):
                    os.unlink(tmp)


@contextmanager
def atomic_paths(*paths: str | os.PathLike) -> Iterator[tuple[Path, ...]]:
    """Yield one temporary path per target (all created up front, beside their targets); when the block
    succeeds, fsync them all, then rename each over its target. Any failure removes every temp file."""
    with group(*paths) as g:
        yield tuple(g.path(p) for p in paths)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; when the block succeeds, fsync it and rename it over ``path``."""
    with atomic_paths(path) as (tmp,):
        yield tmp


def write_bytes(path: str | os.PathLike, data: bytes) -> int:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return len(data)
