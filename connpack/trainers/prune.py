"""Pruning fixed random weights (Ivan & Florian section 2): W * m(t), m(t) = 1[t > 0]; minimal: Eq. 4."""

from __future__ import annotations

from connpack.trainers.gated import Gated, IvanFlorianHparams, minimal


class Prune(Gated):
    name = "prune"
    Hparams = IvanFlorianHparams
    mode = "prune"
    lr_column = "prune"

    def regularizer(self, cfg):
        return minimal(cfg)


METHOD = Prune()
