"""Linear and Conv2d layers whose weight is fixed and whose connectivity is trained.

A layer holds the generated weight ``w`` (a buffer, or a parameter in ``dense`` mode) and, for the
connectivity modes, a trainable tensor ``scores`` (the paper's ``t``) of the same shape:

    dense      w                          (baseline: the weights themselves are trained)
    prune      w * m(t),  m(t) = 1[t > 0]        (Ivan & Florian, Eq. 1)
    flip       w * f(t),  f(t) = +1 if t >= 0 else -1   (Ivan & Florian, section 3)
    topk       w * h(|t|), h = 1 for the top fraction k of the layer  (edge-popup, Ramanujan et al., Eq. 4, Alg. 1)

All three gates use the straight-through estimator: the backward pass treats the gate as the identity.
A materialised layer (``mode == "dense"`` with the effective weight copied in) is a plain nn.Linear /
nn.Conv2d, which is what the exporters see.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from connpack.errors import SpecError

MODES = ("dense", "prune", "flip", "topk")


class _Mask(torch.autograd.Function):
    """m(t) = 1[t > 0] with the straight-through gradient."""

    @staticmethod
    def forward(ctx, t):
        return (t > 0).to(t.dtype)

    @staticmethod
    def backward(ctx, g):
        return g


class _Sign(torch.autograd.Function):
    """f(t) = +1 where t >= 0, -1 elsewhere, with the straight-through gradient."""

    @staticmethod
    def forward(ctx, t):
        return torch.where(t >= 0, 1.0, -1.0).to(t.dtype)

    @staticmethod
    def backward(ctx, g):
        return g


class _GatedWeight(torch.autograd.Function):
    """W_eff = w * g, g a 0/1 or +-1 gate, in one pass; backward dL/dt = dL/dW_eff * w (straight-through).

    The forward and backward of ``w * Gate.apply(t)`` without the intermediate gate tensor: the trainers'
    hot path (benchmarks/bench_step_time.py).
    """

    @staticmethod
    def forward(ctx, w, t, bits, flip: bool):
        """``t`` only routes the gradient; ``bits`` (bool, from t) is the keep-mask, or the flip bits if ``flip``."""
        ctx.save_for_backward(w)
        # multiplications, not torch.where: on CPU where() over a bool mask is ~5x slower (bench_step_time.py)
        if flip:
            return w * (1 - 2 * bits.to(w.dtype))
        return w * bits

    @staticmethod
    def backward(ctx, g):
        (w,) = ctx.saved_tensors
        return None, g * w, None, None


class _TopK(torch.autograd.Function):
    """h(s): 1 for the kept_count(n, k) largest entries of the tensor, 0 elsewhere; straight-through gradient.

    Applied to |scores| as in edge-popup's Algorithm 1 (``GetSubnet.apply(scores.abs(), k)``), so the
    gradient reaching a score is g * sign(s) (through abs) -- the reference code's behaviour.
    """

    @staticmethod
    def forward(ctx, a, k):
        return topk_mask(a.detach(), k).to(a.dtype)

    @staticmethod
    def backward(ctx, g):
        return g, None


def kept_count(n: int, k: float) -> int:
    """Number of weights kept when keeping a fraction k of n (at least one)."""
    return max(1, min(n, int(round(k * n))))


# Which selection finds the keep-th largest value fastest (benchmarks/bench_topk.py): on CPU kthvalue
# (quickselect) and topk are within noise of each other and 5-10x faster than a sort for n > 10^4; on CUDA
# kthvalue is known to be slow for large tensors, so topk is used there.
def kth_largest(flat: torch.Tensor, keep: int) -> torch.Tensor:
    """The keep-th largest entry of a 1-D tensor (a 0-d tensor), without a full sort."""
    n = flat.numel()
    if flat.device.type == "cpu" and n >= 100_000:
        return flat.kthvalue(n - keep + 1).values
    return flat.topk(keep, sorted=False).values.min()


def _kth_largest_near(flat: torch.Tensor, keep: int, state: dict) -> torch.Tensor | None:
    """The keep-th largest entry, found in a band around last step's threshold; None if not found there.

    Training moves scores a little per step, so the threshold moves a little: count the entries above the
    band (all kept) and in it; when the band brackets the threshold, select inside the band only. The counts
    make the answer exact whatever the band -- the band only decides how much work the selection does.
    """
    tau, delta = state["thr"], state["delta"]
    for _ in range(3):
        lo, hi = tau - delta, tau + delta
        above = int((flat > hi).sum())
        if above < keep:
            in_band = (flat >= lo) & (flat <= hi)
            count = int(in_band.sum())
            if above + count >= keep:
                band = flat[in_band]
                thr = band.kthvalue(count - (keep - above) + 1).values
                moved = abs(float(thr) - tau)
                state["delta"] = max(4.0 * moved, 0.5 * delta, 1e-12)
                return thr
        delta *= 8.0
    return None


def topk_mask(a: torch.Tensor, k: float, state: dict | None = None) -> torch.Tensor:
    """Boolean mask of exactly kept_count(n, k) largest entries of ``a``.

    One selection gives the threshold; everything above it is kept, and entries equal to it are kept in
    position order (lowest flat index first) until the count is exact. The result therefore does not depend
    on which selection algorithm ran or on the device. ``state`` (a dict the caller keeps between calls, CPU
    only) lets the selection start from the previous threshold (``_kth_largest_near``): same result, less work.
    """
    flat = a.reshape(-1)
    n = flat.numel()
    keep = kept_count(n, k)
    if keep == n:
        return torch.ones_like(a, dtype=torch.bool)
    warm = state is not None and flat.device.type == "cpu" and n >= 10_000
    thr = _kth_largest_near(flat, keep, state) if warm and "thr" in state else None
    if thr is None:
        thr = kth_largest(flat, keep)
        if warm:
            state["delta"] = 1e-3 * float(flat.max() - flat.min()) + 1e-12
    if warm:
        state["thr"] = float(thr)
    mask = flat >= thr
    if flat.device.type == "cpu" and int(mask.sum()) == keep:  # no tie at the threshold (the usual case)
        return mask.view_as(a)
    ties = flat == thr
    room = keep - (flat > thr).sum()  # how many of the tied entries fit
    mask = (flat > thr) | (ties & (ties.cumsum(0) <= room))
    return mask.view_as(a)


class ConnMixin:
    """Shared state and gate logic of ConnLinear and ConnConv2d."""

    mode: str
    k: float

    def _init_conn(self):
        self.mode = "dense"
        self.k = 1.0
        self.scores = None
        self._topk_state: dict = {}  # last threshold (speeds up the next top-k; never changes its result)

    def configure(self, mode: str, weight: torch.Tensor, scores: torch.Tensor | None = None, k: float = 1.0):
        """Set the fixed weight and the trainable connectivity variable.

        In ``dense`` mode the weight becomes a trainable parameter; otherwise it is a frozen buffer and
        ``scores`` (same shape) is the parameter.
        """
        if mode not in MODES:
            raise SpecError(f"unknown layer mode '{mode}' (choose from {', '.join(MODES)})")
        if tuple(weight.shape) != tuple(self.weight.shape):
            raise SpecError(f"weight shape {tuple(weight.shape)} != layer shape {tuple(self.weight.shape)}")
        del self.weight
        if mode == "dense":
            self.weight = nn.Parameter(weight.clone())
            self.scores = None
        else:
            if scores is None or tuple(scores.shape) != tuple(weight.shape):
                raise SpecError("connectivity modes need scores of the weight's shape")
            self.register_buffer("weight", weight.clone())
            self.scores = nn.Parameter(scores.clone())
        if not (0.0 < k <= 1.0):
            raise SpecError(f"k (fraction of weights KEPT) must be in (0, 1], got {k}")
        self.mode, self.k = mode, float(k)
        return self

    def gate(self) -> torch.Tensor | None:
        """The connectivity gate g(t) (with STE), or None in dense mode."""
        if self.mode == "prune":
            return _Mask.apply(self.scores)
        if self.mode == "flip":
            return _Sign.apply(self.scores)
        if self.mode == "topk":
            return _TopK.apply(self.scores.abs(), self.k)
        return None

    def effective_weight(self) -> torch.Tensor:
        """w * g(t) with the straight-through gradient to t (= ``self.weight * self.gate()``, fused)."""
        if self.mode == "dense":
            return self.weight
        t = self.scores.abs() if self.mode == "topk" else self.scores  # edge-popup: gradient through |s|
        with torch.no_grad():
            if self.mode == "prune":
                bits = t > 0
            elif self.mode == "flip":
                bits = t < 0
            else:
                bits = topk_mask(t, self.k, self._topk_state)
        return _GatedWeight.apply(self.weight, t, bits, self.mode == "flip")

    @torch.no_grad()
    def connectivity(self) -> torch.Tensor | None:
        """The trained bits: the keep-mask (prune/topk) or the flip bits (flip, 1 = sign flipped)."""
        if self.mode in ("prune",):
            return self.scores > 0
        if self.mode == "topk":
            return topk_mask(self.scores.abs(), self.k, self._topk_state)
        if self.mode == "flip":
            return self.scores < 0
        return None


class ConnLinear(ConnMixin, nn.Linear):
    def __init__(self, in_features: int, out_features: int, bias: bool = False):
        super().__init__(in_features, out_features, bias=bias)
        self._init_conn()

    def forward(self, x):
        return F.linear(x, self.effective_weight(), self.bias)


class ConnConv2d(ConnMixin, nn.Conv2d):
    def __init__(self, in_channels: int, out_channels: int, kernel_size=3, stride=1, padding=1, bias: bool = False):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)
        self._init_conn()

    def forward(self, x):
        return self._conv_forward(x, self.effective_weight(), self.bias)


def conn_layers(model: nn.Module) -> list[tuple[str, ConnMixin]]:
    """The connectivity-bearing layers in registration order; their weights are the packed tensors."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, ConnMixin)]
