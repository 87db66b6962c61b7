"""Flipping the signs of fixed random weights (Ivan & Florian section 2): W * sign(t); minimal: Eq. 4 over the
flips (fewest signs flipped)."""

from __future__ import annotations

from connpack.trainers.gated import Gated, IvanFlorianHparams, minimal


class Flip(Gated):
    name = "flip"
    Hparams = IvanFlorianHparams
    mode = "flip"
    lr_column = "flip"

    def regularizer(self, cfg):
        return minimal(cfg)


METHOD = Flip()
