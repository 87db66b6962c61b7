"""connpack: train, pack and export networks with fixed random weights and learned connectivity.

Python API (imported on first use, so ``import connpack`` stays fast and needs no torch)::

    connpack.pack(model_or_path, "model.cpk", arch=None, values="float32", codec="auto") -> bytes written
    connpack.load("model.cpk") -> torch.nn.Module
    connpack.export_onnx("model.cpk", "model.onnx", kind="dense") -> bytes written
    connpack.report("model.cpk") -> connpack.report.Report

``connpack.pack`` and ``connpack.report`` are also the submodules of those names: calling the module calls
the API function (connpack.api), so both ``connpack.report(path)`` and ``connpack.report.Report`` work
whichever was imported first.
"""
from __future__ import annotations

import importlib
import sys
import types

__version__ = "0.1.0"
__all__ = ["pack", "load", "export_onnx", "report"]

_CALLABLE_SUBMODULES = ("pack", "report")


class _CallableModule(types.ModuleType):
    """A submodule that, called, runs the API function of its name (connpack.api)."""

    def __call__(self, *args, **kwargs):
        from connpack import api

        return getattr(api, self.__name__.rpartition(".")[2])(*args, **kwargs)


class _Package(types.ModuleType):
    def __setattr__(self, name, value):
        # the import system sets ``connpack.<submodule>`` here: make pack/report callable as they arrive
        if name in _CALLABLE_SUBMODULES and type(value) is types.ModuleType:
            value.__class__ = _CallableModule
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str):
    if name in _CALLABLE_SUBMODULES:
        return importlib.import_module(f"connpack.{name}")
    if name in ("load", "export_onnx"):
        from connpack import api

        return getattr(api, name)
    raise AttributeError(f"module 'connpack' has no attribute '{name}'")
