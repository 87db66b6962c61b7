"""The dense baseline (Ivan & Florian, Table 1 "baseline"): the generated weights themselves are trained."""

from __future__ import annotations

from connpack.trainers.gated import Gated, IvanFlorianHparams


class Baseline(Gated):
    name = "baseline"
    Hparams = IvanFlorianHparams  # variant has no effect: there is no gate to regularise
    mode = "dense"
    lr_column = "baseline"


METHOD = Baseline()
