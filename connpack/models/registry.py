"""Architecture registry: a name maps to a builder ``(ModelSpec) -> nn.Module``.

Builders create ConnLinear/ConnConv2d layers with placeholder weights; connpack.models.build fills them
from the RNG. Registering a name twice is refused.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from connpack.errors import SpecError
from connpack.specs import ModelSpec

Builder = Callable[[ModelSpec], nn.Module]
_REGISTRY: dict[str, Builder] = {}


def register(name: str):
    def deco(fn: Builder) -> Builder:
        if name in _REGISTRY:
            raise SpecError(f"architecture '{name}' is already registered")
        _REGISTRY[name] = fn
        return fn

    return deco


def names() -> list[str]:
    return sorted(_REGISTRY)


def get(name: str) -> Builder:
    """The builder of ``name``; "connpack:<name>" is an alias of a built-in name ("connpack:conv6" = "conv6")."""
    try:
        return _REGISTRY[name.removeprefix("connpack:")]
    except KeyError:
        raise SpecError(f"unknown architecture '{name}' (choose from {', '.join(names())})") from None
