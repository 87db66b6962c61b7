"""Quantisation steps from a target the user states: an output or weight error, or an accuracy drop.

    max_error=E, on="outputs"   relative L2 error of the network's outputs on a fixed probe batch <= E
    max_error=E, on="weights"   relative L2 error of all kept values together <= E
    max_accuracy_drop=D         test accuracy on the network's dataset within D points of the float32 network

Every search evaluates exactly what a reader will decode (connpack.values.decoded), so the file reaches the
figure it reports. One step per tensor, a multiple of the rms of its values: a global multiple found by
bisection, then (accuracy target) each layer coarsened on its own while the target holds. For an output
error or an accuracy drop the indices are chosen so that each row's rounding errors cancel on the mean
inputs (of the probe batch, or of the first 1000 test images; connpack.values.cancel_mean): about 5x less
output error at the same steps on a pruned ResNet-18.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from connpack import values as vq
from connpack.description import Description
from connpack.errors import SpecError

PROBE_SEED, PROBE_BATCH = 0x5EED, 8
LO, HI = 2.0**-14, 16.0  # range of the common step multiple searched
BISECTIONS = 14


@dataclass
class Choice:
    """What a target search chose and what it reached."""

    plan: dict  # tensor name -> connpack.values.Quant
    relative: dict[str, float]  # tensor name -> step / rms of its values
    target: str  # e.g. "output error <= 0.009"
    reached: dict = field(default_factory=dict)  # e.g. {"output error": 0.0087} or {"accuracy": 97.0, ...}


class _Net:
    """The float32 network with its "values" weights replaceable in place (torch)."""

    def __init__(self, desc: Description, kept: list[vq.Kept]):
        import torch

        from connpack.exporters.module import to_module

        self.torch = torch
        self.model = to_module(desc)
        sd = self.model.state_dict()
        self.slots = {
            k.name: (
                sd[k.name].view(-1),
                torch.from_numpy(
                    np.flatnonzero(desc.tensors[k.name].bits) if k.name in desc.tensors else np.arange(k.values.size)
                ),
            )
            for k in kept
        }

    def load(self, kept: list[vq.Kept], plan: dict | None) -> None:
        for k in kept:
            flat, idx = self.slots[k.name]
            v = k.values if plan is None else vq.decoded(k, plan[k.name])
            flat[idx] = self.torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))

    def __call__(self, x):
        with self.torch.no_grad():
            return self.model(x)

    def input_means(self, kept: list[vq.Kept], x) -> dict[str, np.ndarray]:
        """The mean over ``x`` of the input each kept weight multiplies (float64, one per kept value), for
        the weights of Linear and (ungrouped) Conv2d layers: what connpack.values.cancel_mean balances on."""
        nn = self.torch.nn
        modules = dict(self.model.named_modules())
        means, hooks = {}, []

        def hook(module, inputs, _out, name):
            a = inputs[0].detach().double()
            if isinstance(module, nn.Linear):
                row = a.reshape(-1, a.shape[-1]).mean(0)
            else:  # the mean of the unfolded patches: unfold is linear, so unfold the batch mean
                cols = nn.functional.unfold(
                    a.mean(0, keepdim=True), module.kernel_size, module.dilation, module.padding, module.stride
                )
                row = cols[0].mean(1)
            _, idx = self.slots[name]
            means[name] = row.numpy()[idx.numpy() % row.numel()]

        for k in kept:
            module = modules.get(k.name.removesuffix(".weight")) if k.name.endswith(".weight") else None
            if isinstance(module, nn.Linear) or (
                isinstance(module, nn.Conv2d)
                and module.groups == 1
                and module.padding_mode == "zeros"
                and not isinstance(module.padding, str)
            ):
                hooks.append(module.register_forward_hook(lambda m, i, o, name=k.name: hook(m, i, o, name)))
        try:
            self(x)
        finally:
            for h in hooks:
                h.remove()
        return means


def probe_batch(desc: Description):
    """The fixed probe batch: PROBE_BATCH standard normal inputs of the model's input shape (connpack.rng)."""
    import torch

    from connpack import rng

    shape = (PROBE_BATCH, *desc.spec.model.in_shape)
    return torch.from_numpy(rng.normal(PROBE_SEED, 0, shape, stream=rng.STREAM_DATA).astype(np.float32))


def _bisect(ok, lo: float = LO, hi: float = HI, steps: int = BISECTIONS) -> float:
    """The largest multiple in [lo, hi] (log scale) for which ok() holds, assuming ok is monotone; lo if none."""
    if ok(hi):
        return hi
    if not ok(lo):
        return lo
    for _ in range(steps):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def _allocation(net: _Net, kept: list[vq.Kept], x, ref: np.ndarray, noise: float = 0.01) -> dict[str, float]:
    """Relative step of each tensor, up to a common factor, that minimises the bits for a given output error.

    At fine steps tensor l adds output squared error s_l * n_l * step_l^2 / 12 and costs n_l * log2(1/step_l)
    bits, so the optimum has step_l proportional to 1/sqrt(s_l): s_l is measured once per tensor by adding
    Gaussian noise of ``noise`` x its rms to it alone (a fixed connpack.rng draw). Returned as multiples of
    the tensor's rms, normalised to a geometric mean of 1."""
    from connpack import rng

    steps = {}
    for i, k in enumerate(kept):
        sigma = noise * max(k.rms, 1e-30)
        z = rng.normal(PROBE_SEED, 1000 + i, (k.values.size,), stream=rng.STREAM_DATA).astype(np.float64)
        noisy = vq.Kept(k.name, (k.values + sigma * z).astype(np.float32), k.chan, k.n_out, None)
        net.load([noisy], None)
        err2 = float(np.sum((net(x).numpy() - ref) ** 2))
        net.load([k], None)
        s = err2 / max(k.values.size * sigma**2, 1e-300)
        steps[k.name] = (1.0 / math.sqrt(s) if s > 0 else HI * k.rms) / max(k.rms, 1e-30)
    mean = math.exp(sum(math.log(v) for v in steps.values()) / len(steps))
    return {n: v / mean for n, v in steps.items()}


def _search(err, target: float, tries: int = 6) -> float:
    """The largest common multiple r found with err(r) <= target. The error of a fine quantiser grows about in
    proportion to the step, so each try rescales the best feasible r by target / err (secant steps), after a
    bisection bracket when the first guess fails."""
    r = _bisect(lambda r: err(r) <= target, steps=6)
    best, e = r, err(r)
    for _ in range(tries):
        if e <= 0 or e > target:
            break
        cand = best * min(2.0, (target / e) * 0.998)
        if cand <= best * 1.001:
            break
        ec = err(cand)
        if ec <= target:
            best, e = cand, ec
        else:  # overshoot: try halfway (in log scale) once more
            cand = math.sqrt(best * cand)
            ec = err(cand)
            if ec > target:
                break
            best, e = cand, ec
    return best


def _uniform(kept, r):
    return {k.name: r for k in kept}


def max_error(desc: Description, error: float, on: str = "outputs") -> Choice:
    if not (isinstance(error, (int, float)) and math.isfinite(error) and error > 0):
        raise SpecError(f"--max-error must be a number > 0, got {error}")
    if on not in ("outputs", "weights"):
        raise SpecError(f"the error is measured on 'outputs' or 'weights', not {on!r}")
    kept = vq.kept_tensors(desc)
    if not kept:
        raise SpecError("the network has no stored values to quantise")
    if on == "weights":
        ref = np.concatenate([k.values for k in kept])

        def measure(rel):
            plan = vq.plan_relative(kept, rel)
            return vq.relative_error(ref, np.concatenate([vq.decoded(k, plan[k.name]) for k in kept]))

        shape = _uniform(kept, 1.0)
    else:
        net, x = _Net(desc, kept), probe_batch(desc)
        ref = net(x).numpy().astype(np.float64)
        means = net.input_means(kept, x)

        def measure(rel):
            net.load(kept, vq.plan_relative(kept, rel, means))
            return vq.relative_error(ref, net(x).numpy())

        shape = _allocation(net, kept, x, ref)

    r = _search(lambda r: measure({n: r * f for n, f in shape.items()}), error)
    rel = {n: r * f for n, f in shape.items()}
    what = "output error" if on == "outputs" else "weight error"
    plan = vq.plan_relative(kept, rel, means if on == "outputs" else None)
    return Choice(plan, rel, f"{what} <= {error:g}", {what: measure(rel)})


def dataset_for(desc: Description) -> str:
    """The dataset an accuracy target is measured on: the one the network records (connpack.contract: run
    files record their training set; imported networks the --dataset given to pack). None: SpecError (exit 2)."""
    if desc.data is None:
        raise SpecError(
            "--max-accuracy-drop needs the dataset the network was trained on; this network records "
            "none (give --dataset NAME)"
        )
    return desc.data.dataset


def max_accuracy_drop(desc: Description, drop: float, data_dir=None, limit: int | None = None) -> Choice:
    """The coarsest per-tensor steps keeping test accuracy >= float32 accuracy - ``drop`` points."""
    if not (isinstance(drop, (int, float)) and math.isfinite(drop) and drop >= 0):
        raise SpecError(f"--max-accuracy-drop must be a number >= 0 (points), got {drop}")
    name = dataset_for(desc)
    kept = vq.kept_tensors(desc)
    if not kept:
        raise SpecError("the network has no stored values to quantise")
    import torch

    from connpack import data

    x, y = data.load(name, "test", data_dir, limit=limit, raw=True)  # normalised as the network records
    mean = np.asarray(desc.data.mean, np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(desc.data.std, np.float32).reshape(1, -1, 1, 1)
    x = (x - torch.from_numpy(mean)) / torch.from_numpy(std)
    net = _Net(desc, kept)
    means = net.input_means(kept, x[:1000])

    def accuracy(plan) -> float:
        net.load(kept, plan)
        correct = sum(int((net(xb).argmax(1) == yb).sum()) for xb, yb in zip(x.split(1000), y.split(1000)))
        return 100.0 * correct / len(y)

    base = accuracy(None)
    floor = base - drop + 1e-9
    r = _bisect(lambda r: accuracy(vq.plan_relative(kept, _uniform(kept, r), means)) >= floor)
    rel = _uniform(kept, r)
    for k in sorted(kept, key=lambda k: -k.values.size):  # then coarsen each tensor alone, largest first
        for factor in (4.0, 2.0, 1.41):
            trial = {**rel, k.name: min(HI, rel[k.name] * factor)}
            if trial[k.name] > rel[k.name] and accuracy(vq.plan_relative(kept, trial, means)) >= floor:
                rel = trial
                break
    plan = vq.plan_relative(kept, rel, means)
    return Choice(
        plan,
        rel,
        f"accuracy drop <= {drop:g} points on {name}",
        {"accuracy": accuracy(plan), "float32 accuracy": base, "dataset": name},
    )
