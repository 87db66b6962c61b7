"""The method registry: name -> Method. Adding a method = one module defining ``METHOD`` + one line here.

``make_config`` turns user options (flat, as the CLI gives them) into a resolved TrainConfig: the common
options not given take the method's paper defaults, the rest go into the method's frozen Hparams.
"""

from __future__ import annotations

from dataclasses import fields

from connpack.errors import SpecError
from connpack.trainers import asni, baseline, edgepopup, flip, imp, prune
from connpack.trainers.base import Method
from connpack.trainers.config import TrainConfig, parse_init


def _register(*modules) -> dict[str, Method]:
    out: dict[str, Method] = {}
    common = {f.name for f in TrainConfig.common_fields()}
    for module in modules:
        method = module.METHOD
        if method.name in out:
            raise RuntimeError(f"method '{method.name}' registered twice")
        clash = common & {f.name for f in fields(method.Hparams)}
        if clash:
            raise RuntimeError(f"method '{method.name}': option(s) {', '.join(sorted(clash))} clash with TrainConfig")
        out[method.name] = method
    return out


METHODS = _register(baseline, prune, flip, edgepopup, asni, imp)


def get(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise SpecError(f"unknown method '{name}' (choose from {', '.join(METHODS)})") from None


def hparam_fields() -> dict:
    """Every method's option fields, by name (methods may share one, e.g. prune and flip's variant)."""
    out = {}
    for method in METHODS.values():
        for f in fields(method.Hparams):
            out.setdefault(f.name, (f, []))[1].append(method.name)
    return out


def make_config(method: str = "flip", **options) -> TrainConfig:
    """The resolved TrainConfig of ``options``; an option left out (or None) takes the method's default.

    Refuses an option the method does not have, in one line."""
    m = get(method)
    options = {k: v for k, v in options.items() if v is not None}
    common = {f.name: f for f in TrainConfig.common_fields()}
    own = {f.name for f in fields(m.Hparams)}
    unknown = sorted(set(options) - set(common) - own)
    if unknown:
        owners = hparam_fields()
        name = unknown[0]
        if name in owners:
            raise SpecError(
                f"option --{name.replace('_', '-')} is for --method {' | '.join(owners[name][1])}, not {method}"
            )
        raise SpecError(f"unknown training option '{name}'")
    given = {k: v for k, v in options.items() if k in common}
    if "init" in given:
        parse_init(given["init"], scaled_ok=m.scaled_init)
    defaults = m.defaults(
        given.get("arch", common["arch"].default),
        given.get("dataset", common["dataset"].default),
        given.get("optimizer"),
    )
    for name, f in common.items():
        if name not in given and f.metadata.get("method_default") and name in defaults:
            given[name] = defaults[name]
    hp = m.hparams(
        given.get("arch", common["arch"].default),
        given.get("dataset", common["dataset"].default),
        {k: v for k, v in options.items() if k in own},
    )
    return TrainConfig(method=method, hp=hp, **given)


__all__ = ["METHODS", "get", "make_config", "hparam_fields"]
