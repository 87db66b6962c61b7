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

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from connpack.errors import SpecError

MODES = ("dense", "prune", "flip", "topk")

try:
    from connpack import _gatec as _COMPILED  # connpack/_gatec.c: one fused pass per gate (same bits as below)
except ImportError:  # not built (no C compiler): the torch code below
    _COMPILED = None


def _compiled(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether connpack._gatec can take these tensors (built; CPU, float32, contiguous). Written out, not as a
    loop: it runs twice per layer and step, where a generator expression cost ~5 us."""
    return (
        _COMPILED is not None
        and a.dtype == torch.float32
        and b.dtype == torch.float32
        and a.is_cpu
        and b.is_cpu
        and a.is_contiguous()
        and b.is_contiguous()
    )


def _score_grad(layer, gw: torch.Tensor, w: torch.Tensor, t: torch.Tensor | None, owned: bool = True) -> torch.Tensor:
    """dL/dt = dL/dW_eff * w, * sgn(s) for topk (through |s|), + the armed pull; in place on ``gw`` if ``owned``."""
    pull, layer.pull = layer.pull, None
    if owned and t is None and _compiled(gw, w):
        _COMPILED.score_grad(gw.numpy(), w.numpy(), None if pull is None else float(pull))
        return gw
    gt = gw.mul_(w) if owned else gw * w
    if t is not None:
        gt.mul_(t.sgn())
    if pull is not None:
        gt.add_(pull)
    return gt


class _GatedWeight(torch.autograd.Function):
    """W_eff = w * g(t) with the straight-through gradient to t, as one autograd node (Conv2d's weight).

    The forward and backward of ``w * gate(t)`` with autograd through a straight-through gate (the reference,
    kept in tests/test_layers.py), in one pass each way on CPU (connpack._gatec: the gate computed and applied
    in the same loop; torch code elsewhere: a comparison written straight into the output buffer as 1.0/0.0
    with a float ``out=`` -- a bool tensor and its conversion cost ~5x a float pass -- then multiplied by w in
    place); the backward is dL/dW_eff * w. For ``topk`` the gradient goes through |s| as in edge-popup's code
    (``GetSubnet.apply(scores.abs(), k)``): * sgn(s).
    Every value equals the reference's bit for bit: the gate is exactly 0, 1 or -1 (tests/test_layers.py).
    """

    @staticmethod
    def forward(ctx, w, t, layer):
        ctx.layer = layer
        ctx.save_for_backward(w, t if layer.mode == "topk" else None)
        return gated_weight(w, t, layer.mode, layer.k, layer._topk_state)

    @staticmethod
    def backward(ctx, g):
        w, t = ctx.saved_tensors
        return None, _score_grad(ctx.layer, g, w, t, owned=False), None


class _GatedLinear(torch.autograd.Function):
    """F.linear(x, w * g(t), bias) with the straight-through gradient to t, as one autograd node.

    Through autograd, the weight gradient of F.linear arrives as the transpose of x^T dy (a strided view), so
    ``dW_eff * w`` reads it across strides and the result is copied again into the scores' layout: ~10x the
    cost of a contiguous pass on CPU. Here the weight gradient is computed as dy^T x, already in the weight's
    layout (MKL sums each entry over the batch in the same order either way: same bits), and turned into the
    scores' gradient in place. The scores' gradient is float32 like the scores. ``_GatedLinearCUDA`` is the
    same node for CUDA tensors, its backward run under the forward's autocast state (``custom_fwd/bwd``: bf16
    matmuls, as autograd does); the decorators cost ~25 us per layer and step, so CPU tensors skip them.
    """

    @staticmethod
    def forward(ctx, x, w, t, bias, layer):
        weff = gated_weight(w, t, layer.mode, layer.k, layer._topk_state)
        ctx.layer = layer
        # W_eff is needed again only for the input's gradient (not in a first layer): freed here otherwise, its
        # block is the one the weight gradient gets in the backward (warm in cache, no new pages)
        ctx.save_for_backward(x, w, weff if ctx.needs_input_grad[0] else None, t if layer.mode == "topk" else None)
        return F.linear(x, weff, bias)

    @staticmethod
    def backward(ctx, gy):
        x, w, weff, t = ctx.saved_tensors
        gx = gt = gb = None
        same = gy.dtype == x.dtype == w.dtype  # not under autocast (bf16 gy): then no conversions to dispatch
        if ctx.needs_input_grad[0]:
            gx = gy.matmul(weff) if same else gy.matmul(weff.to(gy.dtype)).to(x.dtype)
        gy2 = gy if gy.dim() == 2 else gy.reshape(-1, gy.shape[-1])
        if ctx.needs_input_grad[2]:
            x2 = x if x.dim() == 2 else x.reshape(-1, x.shape[-1])
            gw = gy2.t().mm(x2) if same else gy2.t().mm(x2.to(gy.dtype)).to(w.dtype)
            gt = _score_grad(ctx.layer, gw, w, t)
        if ctx.needs_input_grad[3]:
            gb = gy2.sum(0)
        return gx, None, gt, gb, None


class _GatedLinearCUDA(_GatedLinear):
    forward = staticmethod(torch.amp.custom_fwd(_GatedLinear.forward, device_type="cuda"))
    backward = staticmethod(torch.amp.custom_bwd(_GatedLinear.backward, device_type="cuda"))


def gated_weight(
    w: torch.Tensor, t: torch.Tensor, mode: str, k: float = 1.0, state: dict | None = None
) -> torch.Tensor:
    """w * g(t) (no gradient): prune 1[t > 0], flip +1 (t >= 0) / -1, topk 1 on the top k of |t|."""
    buf = torch.empty_like(w)
    if mode in ("prune", "flip") and _compiled(w, t):
        _COMPILED.gate(buf.numpy(), w.numpy(), t.detach().numpy(), mode == "flip")
        return buf
    if mode == "prune":
        return torch.gt(t, 0, out=buf).mul_(w)
    if mode == "flip":
        # w - 2 w 1[t < 0] = -w exactly where flipped (w + (-2w) is exact)
        return torch.addcmul(w, w, torch.lt(t, 0, out=buf), value=-2)
    if mode == "topk":
        return topk_gate(t.abs(), k, state, out=buf).mul_(w)
    raise SpecError(f"no gate for layer mode '{mode}'")


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


def _kth_largest_numpy(x: np.ndarray, keep: int, state: dict | None):
    """The keep-th largest entry of a 1-D float array (CPU); with ``state``, searched near the last one.

    numpy's introselect (np.partition) and its comparisons are several times faster on CPU than torch's
    kthvalue and bool comparisons (benchmarks/bench_topk.py). Training moves scores a little per step, so
    the threshold moves a little: count the entries above a band around last step's threshold (all kept)
    and in it; when the band brackets the threshold, select inside the band only. The counts make the answer
    exact whatever the band -- the band only decides how much work the selection does.
    """
    n = x.size
    if state is not None and "thr" in state:
        tau, delta = state["thr"], state["delta"]
        for _ in range(3):
            lo, hi = tau - delta, tau + delta
            above = int(np.count_nonzero(x > hi))
            if above < keep:
                band = x[(x >= lo) & (x <= hi)]
                if above + band.size >= keep:
                    j = band.size - (keep - above)
                    thr = float(np.partition(band, j)[j])
                    state["delta"] = max(4.0 * abs(thr - tau), 0.5 * delta, 1e-12)
                    state["thr"] = thr
                    return thr
            delta *= 8.0
    thr = float(np.partition(x, n - keep)[n - keep])
    if state is not None:
        state["thr"] = thr
        state["delta"] = 1e-3 * float(x.max() - x.min()) + 1e-12
    return thr


def topk_gate(a: torch.Tensor, k: float, state: dict | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
    """1.0 on exactly kept_count(n, k) largest entries of ``a``, 0.0 elsewhere (a's dtype, written to ``out``).

    One selection gives the threshold; everything above it is kept, and entries equal to it are kept in
    position order (lowest flat index first) until the count is exact. The result therefore does not depend
    on which selection algorithm ran or on the device. ``state`` (a dict the caller keeps between calls, CPU
    only) lets the selection start from the previous threshold: same result, less work.
    """
    out = torch.empty_like(a) if out is None else out
    flat = a.detach().reshape(-1)
    n = flat.numel()
    keep = kept_count(n, k)
    if keep == n:
        return out.fill_(1)
    on_cpu = flat.device.type == "cpu"
    if on_cpu and flat.dtype in (torch.float32, torch.float64):
        thr = _kth_largest_numpy(flat.numpy(), keep, state if n >= 10_000 else None)
    else:
        thr = kth_largest(flat, keep)
    torch.ge(a, thr, out=out)
    # float32 sums of 0/1 are exact up to 2**24
    if on_cpu and int(out.sum(dtype=torch.float64 if n > 2**24 else None)) == keep:
        return out  # no tie at the threshold (the usual case)
    ties = flat == thr
    room = keep - (flat > thr).sum()  # how many of the tied entries fit
    mask = (flat > thr) | (ties & (ties.cumsum(0) <= room))
    return out.copy_(mask.view_as(a))


def topk_mask(a: torch.Tensor, k: float, state: dict | None = None) -> torch.Tensor:
    """Boolean mask of exactly kept_count(n, k) largest entries of ``a`` (``topk_gate`` as bool)."""
    return topk_gate(a, k, state).bool()


class ConnMixin:
    """Shared state and gate logic of ConnLinear and ConnConv2d."""

    mode: str
    k: float

    def _init_conn(self):
        self.mode = "dense"
        self.k = 1.0
        self.scores = None
        self._topk_state: dict = {}  # last threshold (speeds up the next top-k; never changes its result)
        self.pull: torch.Tensor | None = None  # added to the scores' gradient by the next backward (ScorePull)

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

    def effective_weight(self) -> torch.Tensor:
        """w * g(t) with the straight-through gradient to t, fused (the autograd reference: tests/test_layers.py)."""
        if self.mode == "dense":
            return self.weight
        return _GatedWeight.apply(self.weight, self.scores, self)

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
        if self.mode == "dense":
            return F.linear(x, self.weight, self.bias)
        fn = _GatedLinearCUDA if x.is_cuda else _GatedLinear
        return fn.apply(x, self.weight, self.scores, self.bias, self)


class ConnConv2d(ConnMixin, nn.Conv2d):
    def __init__(self, in_channels: int, out_channels: int, kernel_size=3, stride=1, padding=1, bias: bool = False):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)
        self._init_conn()

    def forward(self, x):
        return self._conv_forward(x, self.effective_weight(), self.bias)


class ScorePull:
    """Ivan & Florian's minimal term (Eq. 4), -mean(g(t)) over all M gated weights, applied by the layers.

    Under the straight-through estimator its gradient is -1/M for every score. Instead of a term in the
    autograd graph (a reduction forward, a broadcast and an extra accumulation pass backward: +15% of a
    LeNet step), each call arms every gated layer of ``model`` to add -1/M (the float32 value autograd would
    give) to its scores' gradient in its next backward, in the pass that already writes it: same bits.
    Use one instance per training run as the loop's regulariser, called once per step between the forward
    and the backward. It returns None: the term's value is never used (the trainers log the fraction of
    ones), only its gradient. The layers and -1/M are found once per model (a step of LeNet-300-100 is
    ~3 ms; looking them up again each step cost 2%).
    """

    def __init__(self):
        self._model: nn.Module | None = None
        self._pull: torch.Tensor | None = None

    def __call__(self, model: nn.Module) -> None:
        if model is not self._model:
            self._model, self._layers, self._pull = model, [layer for _, layer in conn_layers(model)], None
        first = self._layers[0].scores
        if self._pull is None or self._pull.device != first.device or self._pull.dtype != first.dtype:
            m = sum(layer.scores.numel() for layer in self._layers)
            with torch.no_grad():
                self._pull = -(torch.ones((), dtype=first.dtype, device=first.device) / m)
        for layer in self._layers:
            layer.pull = self._pull
        return None


def conn_layers(model: nn.Module) -> list[tuple[str, ConnMixin]]:
    """The connectivity-bearing layers in registration order; their weights are the packed tensors."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, ConnMixin)]
