"""Mask analysis of several sparse networks of one architecture (Paganini & Forde, appendices A, B and D).

- per layer, for each pair: Jaccard distance 1 - |A and B| / |A or B| of the keep-masks (0 for two empty
  masks) and the normalised Hamming distance (fraction of positions that differ), both in [0, 1];
- effective sparsity (appendix B): weights pruned explicitly plus the kept weights disconnected from the
  output by pruning downstream (an output unit/channel none of whose outgoing connections survives is
  dead, backwards from the logits). Computed for chains of layers (LeNet, ConvN, VGG); None otherwise;
- predictions (appendix D): pairwise agreement of the predicted classes on the test split, and the accuracy
  of the ensemble that averages the softmax outputs of all networks.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from connpack.description import Description
from connpack.errors import SpecError
from connpack.files import regular_file


def load(path: str | Path, *, max_weights: int | None = None) -> Description:
    """A .cpk (connpack pack) or a model.pt (connpack train) (``max_weights``: packing.unpack's budget)."""
    path = Path(path)
    regular_file(path)
    if path.suffix == ".pt":
        from connpack import runfile

        return runfile.load(path)[0]
    from connpack.packing import load_checked

    return load_checked(path, **({"max_weights": max_weights} if max_weights else {}))


def keep_mask(code) -> np.ndarray:
    """The keep-mask of a tensor: its bits for mask/ternary/values, all ones for flip and dense tensors."""
    if code.kind in ("mask", "ternary", "values"):
        return code.bits
    return np.ones(code.shape, dtype=bool)


def jaccard_distance(a: np.ndarray, b: np.ndarray) -> float:
    union = int(np.logical_or(a, b).sum())
    return 0.0 if union == 0 else 1.0 - int(np.logical_and(a, b).sum()) / union


def hamming_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.not_equal(a, b).mean()) if a.size else 0.0


def check_same_architecture(descs: list[Description], names: list[str]) -> None:
    ref = {k: c.shape for k, c in descs[0].tensors.items()}
    for d, n in zip(descs[1:], names[1:]):
        got = {k: c.shape for k, c in d.tensors.items()}
        if got != ref:
            raise SpecError(
                f"cannot compare masks of different architectures: {names[0]} "
                f"({descs[0].spec.model.arch}) and {n} ({d.spec.model.arch})"
            )


def effective_masks(masks: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    """Keep-masks minus the weights disconnected from the output (appendix B), for a chain of layers.

    Walks back from the last layer: unit o of layer l is alive when some kept weight of layer l+1 leaving
    it reaches an alive unit. A linear layer after a convolution sees C*H*W inputs, channel c owning the
    block c*H*W..(c+1)*H*W. Returns None when consecutive shapes do not chain (e.g. residual networks).
    """
    names = list(masks)
    out: dict[str, np.ndarray] = {}
    alive_out = np.ones(masks[names[-1]].shape[0], dtype=bool)
    for i in range(len(names) - 1, -1, -1):
        m = masks[names[i]]
        eff = m & alive_out.reshape((-1,) + (1,) * (m.ndim - 1))
        out[names[i]] = eff
        if i == 0:
            break
        alive_in = eff.any(axis=tuple(a for a in range(m.ndim) if a != 1))
        n_prev = masks[names[i - 1]].shape[0]
        if alive_in.size == n_prev:
            alive_out = alive_in
        elif alive_in.size % n_prev == 0:
            alive_out = alive_in.reshape(n_prev, -1).any(axis=1)
        else:
            return None
    return {k: out[k] for k in names}


def effective_sparsity(desc: Description) -> float | None:
    masks = {k: keep_mask(c) for k, c in desc.tensors.items()}
    if desc.spec.model.arch.startswith("resnet"):
        return None
    eff = effective_masks(masks)
    if eff is None:
        return None
    total = sum(m.size for m in masks.values())
    return 1.0 - sum(int(m.sum()) for m in eff.values()) / total


@dataclass
class Comparison:
    names: list[str]
    layers: list[str]
    sparsity: list[float]  # explicit, per network
    effective: list[float | None]  # appendix B, per network
    jaccard: dict[tuple[int, int], list[float]]  # per pair (i, j), per layer
    hamming: dict[tuple[int, int], list[float]]
    accuracy: list[float] = field(default_factory=list)  # per network (when predictions were run)
    agreement: dict[tuple[int, int], float] = field(default_factory=dict)
    ensemble_accuracy: float | None = None
    dataset: str | None = None  # the dataset the predictions were run on
    notes: list[str] = field(default_factory=list)  # "X was trained on A; evaluating on B as asked"

    def to_dict(self) -> dict:
        key = lambda p: f"{self.names[p[0]]}|{self.names[p[1]]}"  # noqa: E731
        return {
            "names": self.names,
            "layers": self.layers,
            "sparsity": self.sparsity,
            "effective": self.effective,
            "jaccard": {key(p): v for p, v in self.jaccard.items()},
            "hamming": {key(p): v for p, v in self.hamming.items()},
            "accuracy": self.accuracy,
            "agreement": {key(p): v for p, v in self.agreement.items()},
            "ensemble_accuracy": self.ensemble_accuracy,
            "dataset": self.dataset,
            "notes": self.notes,
        }


def dataset_of(descs: list[Description], names: list[str], dataset: str | None = None) -> tuple[str, list[str]]:
    """(the dataset to run the networks on, notes): the one they record, or ``dataset`` when asked (a note for
    each network trained on another one). Networks recording different datasets, or none, need ``dataset``."""
    from connpack.contract import dataset_for

    if dataset is None:
        recorded = {d.data.dataset if d.data else None for d in descs}
        if len(recorded) > 1:
            listed = ", ".join(f"{n}: {d.data.dataset if d.data else 'not recorded'}" for n, d in zip(names, descs))
            raise SpecError(f"the networks do not record one dataset ({listed}): give --dataset NAME")
    picks = [dataset_for(d.data, dataset, n) for d, n in zip(descs, names)]
    return picks[0][0], [note for _, note in picks if note]


def predictions(
    descs: list[Description], dataset: str, data_dir: Path | None = None, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(softmax outputs of shape (networks, examples, classes), labels) on the test split of ``dataset``; each
    network gets the raw images normalised as its data contract says (no record: the dataset's own way)."""
    import torch

    from connpack import data
    from connpack.exporters.module import to_module

    shape = tuple(descs[0].spec.model.in_shape)
    raw, y = data.load(dataset, "test", data_dir, limit=limit, raw=True)
    if tuple(raw.shape[1:]) != shape:
        raise SpecError(f"networks take inputs {shape}, dataset '{dataset}' has {tuple(raw.shape[1:])}")
    probs = []
    with torch.no_grad():
        for d in descs:
            stats = d.data or data.info(dataset)
            x = data.normalise(raw, stats.mean, stats.std)
            model = to_module(d)
            probs.append(torch.cat([model(x[i : i + 1000]).softmax(1) for i in range(0, len(x), 1000)]).numpy())
    return np.stack(probs), y.numpy()


def compare(
    descs: list[Description],
    names: list[str],
    *,
    predict: bool = True,
    dataset: str | None = None,
    data_dir: Path | None = None,
    limit: int | None = None,
) -> Comparison:
    if len(descs) < 2:
        raise SpecError("compare needs at least two networks")
    check_same_architecture(descs, names)
    layers = list(descs[0].tensors)
    masks = [{k: keep_mask(c) for k, c in d.tensors.items()} for d in descs]
    pairs = list(itertools.combinations(range(len(descs)), 2))
    sparsity = [1.0 - sum(int(m.sum()) for m in ms.values()) / sum(m.size for m in ms.values()) for ms in masks]
    res = Comparison(
        names=list(names),
        layers=layers,
        sparsity=sparsity,
        effective=[effective_sparsity(d) for d in descs],
        jaccard={(i, j): [jaccard_distance(masks[i][k], masks[j][k]) for k in layers] for i, j in pairs},
        hamming={(i, j): [hamming_distance(masks[i][k], masks[j][k]) for k in layers] for i, j in pairs},
    )
    if predict:
        res.dataset, res.notes = dataset_of(descs, names, dataset)
        probs, y = predictions(descs, res.dataset, data_dir, limit)
        labels = probs.argmax(2)
        res.accuracy = [float((lab == y).mean()) for lab in labels]
        res.agreement = {(i, j): float((labels[i] == labels[j]).mean()) for i, j in pairs}
        res.ensemble_accuracy = float((probs.mean(0).argmax(1) == y).mean())
    return res
