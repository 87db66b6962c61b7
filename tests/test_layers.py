import pytest
import torch
import torch.nn.functional as F

from connpack.layers import (
    ConnConv2d,
    ConnLinear,
    ScorePull,
    _GatedLinear,
    kept_count,
    topk_mask,
)


def _layer(mode, scores, k=1.0):
    layer = ConnLinear(4, 3)
    w = torch.arange(12, dtype=torch.float32).view(3, 4) + 1
    layer.configure(mode, w, scores, k=k)
    return layer, w


def test_prune_gate_is_step_of_t_and_weight_is_a_frozen_buffer():
    t = torch.tensor([[0.5, -0.1, 0.0, 1.0]] * 3)
    layer, w = _layer("prune", t)
    assert torch.equal(layer.effective_weight(), w * (t > 0).float())
    assert "weight" in dict(layer.named_buffers()) and "weight" not in dict(layer.named_parameters())
    assert [n for n, _ in layer.named_parameters()] == ["scores"]


def test_flip_gate_is_sign_and_straight_through_gradient_is_identity():
    t = torch.tensor([[0.5, -0.1, 0.2, -1.0]] * 3)
    layer, w = _layer("flip", t)
    assert torch.equal(layer.effective_weight(), w * torch.where(t >= 0, 1.0, -1.0))
    x = torch.ones(2, 4)
    layer(x).sum().backward()
    # d(sum_j x_i w_ji g(t_ji))/dt_ji with STE: x_i * w_ji summed over the batch
    assert torch.allclose(layer.scores.grad, 2 * w)
    assert torch.equal(layer.connectivity(), t < 0)


def test_topk_keeps_exactly_the_largest_fraction():
    t = torch.randn(50, 40)
    m = topk_mask(t.abs(), 0.3)
    assert int(m.sum()) == kept_count(2000, 0.3) == 600
    assert t.abs()[m].min() >= t.abs()[~m].max()


def test_conv_layer_matches_functional_conv():
    conv = ConnConv2d(2, 3, 3)
    w = torch.randn(3, 2, 3, 3)
    t = torch.randn(3, 2, 3, 3)
    conv.configure("prune", w, t)
    x = torch.randn(1, 2, 5, 5)
    ref = torch.nn.functional.conv2d(x, w * (t > 0).float(), padding=1)
    assert torch.allclose(conv(x), ref)


# --- fused autograd functions (connpack.layers._GatedLinear / _GatedWeight) against the reference graph


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


def _gate(layer):
    """The connectivity gate g(t) of the layer's mode as an autograd graph (STE)."""
    if layer.mode == "prune":
        return _Mask.apply(layer.scores)
    if layer.mode == "flip":
        return _Sign.apply(layer.scores)
    return _TopK.apply(layer.scores.abs(), layer.k)


def _reference(layer, x):
    """The layer's function built from autograd pieces: the op with weight ``w * g(t)`` (STE gate, _gate)."""
    weff = layer.weight * _gate(layer)
    if isinstance(layer, ConnConv2d):
        return F.conv2d(x, weff, layer.bias, padding=1)
    return F.linear(x, weff, layer.bias)


def _grads(layer, x, fn, gy):
    for p in (x, layer.scores, layer.bias):
        if p is not None:
            p.grad = None
    out = fn(layer, x)
    out.backward(gy)
    return out.detach(), [p.grad.clone() for p in (x, layer.scores, layer.bias) if p is not None]


@pytest.mark.parametrize("mode", ["prune", "flip", "topk"])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("conv", [False, True])
def test_fused_layer_equals_the_reference_graph_bit_for_bit(mode, bias, conv):
    g = torch.Generator().manual_seed(1)
    if conv:
        layer, shape, x = ConnConv2d(3, 4, 3, bias=bias), (4, 3, 3, 3), torch.randn(5, 3, 6, 6, generator=g)
    else:
        layer, shape, x = ConnLinear(40, 30, bias=bias), (30, 40), torch.randn(25, 40, generator=g)
    layer.configure(mode, torch.randn(shape, generator=g), torch.randn(shape, generator=g), k=0.4)
    x.requires_grad_(True)
    gy = torch.randn(layer(x).shape, generator=g)
    out, grads = _grads(layer, x, lambda m, v: m(v), gy)
    ref_out, ref_grads = _grads(layer, x, _reference, gy)
    assert torch.equal(out, ref_out)
    assert len(grads) == len(ref_grads) == 3 + bias - 1
    for a, b in zip(grads, ref_grads):
        assert torch.equal(a, b)


@pytest.mark.parametrize("mode", ["prune", "flip", "topk"])
def test_fused_linear_backward_passes_gradcheck_in_float64(mode):
    """The hand-written matmul backward (input and bias gradients) against finite differences."""
    g = torch.Generator().manual_seed(2)
    layer = ConnLinear(6, 5, bias=True).double()
    layer.configure(
        mode,
        torch.randn(5, 6, generator=g, dtype=torch.float64),
        torch.randn(5, 6, generator=g, dtype=torch.float64),
        k=0.5,
    )
    x = torch.randn(4, 6, generator=g, dtype=torch.float64, requires_grad=True)
    t = layer.scores.detach()  # the gate is a step: only the STE defines its gradient (tested above)
    assert torch.autograd.gradcheck(
        lambda x, b: _GatedLinear.apply(x, layer.weight, t, b, layer),
        (x, layer.bias.detach().clone().requires_grad_(True)),
    )


def test_score_pull_gives_the_minimal_terms_gradient_once():
    g = torch.Generator().manual_seed(3)
    net = torch.nn.Sequential(ConnLinear(20, 10), torch.nn.ReLU(), ConnLinear(10, 3))
    for layer in (net[0], net[2]):
        layer.configure(
            "flip", torch.randn(layer.weight.shape, generator=g), torch.randn(layer.weight.shape, generator=g)
        )
    x = torch.randn(8, 20, generator=g)
    scores = [net[0].scores, net[2].scores]

    def grads(term):
        for t in scores:
            t.grad = None
        loss = net(x).square().sum()
        extra = term() if term else None
        loss = loss if extra is None else loss + extra
        loss.backward()
        return [t.grad.clone() for t in scores]

    m = sum(t.numel() for t in scores)
    ref = grads(lambda: -sum(t.sum() for t in scores) / m)  # the term in the autograd graph
    assert all(torch.equal(a, b) for a, b in zip(grads(lambda: ScorePull()(net)), ref))
    free = grads(None)  # the pull was used up by the last backward
    assert not any(torch.equal(a, b) for a, b in zip(free, ref))
    assert all(torch.allclose(a - 1 / m, b) for a, b in zip(free, ref))


def test_the_cuda_node_is_the_same_node_under_autocast_decorators():
    """_GatedLinearCUDA (what CUDA tensors use) computes what _GatedLinear does (checked here on CPU)."""
    from connpack.layers import _GatedLinear, _GatedLinearCUDA

    g = torch.Generator().manual_seed(5)
    layer = ConnLinear(7, 4)
    layer.configure("flip", torch.randn(4, 7, generator=g), torch.randn(4, 7, generator=g))
    x = torch.randn(3, 7, generator=g, requires_grad=True)
    out = []
    for fn in (_GatedLinear, _GatedLinearCUDA):
        layer.scores.grad, x.grad = None, None
        y = fn.apply(x, layer.weight, layer.scores, None, layer)
        y.square().sum().backward()
        out.append((y.detach(), x.grad.clone(), layer.scores.grad.clone()))
    assert all(torch.equal(a, b) for a, b in zip(*out))


def test_the_compiled_gates_equal_the_torch_code_bit_for_bit():
    """connpack._gatec (one fused pass) against the two-pass torch expressions it replaces, signed zeros and
    all; and it is built (pip install -e . compiles it), so the trainers' fast path is the tested one."""
    from connpack import layers

    assert layers._COMPILED is not None, "connpack._gatec is not built: run `pip install -e .` (needs a C compiler)"
    g = torch.Generator().manual_seed(11)
    w = torch.randn(1001, generator=g)
    w[:6] = torch.tensor([0.0, -0.0, 0.0, -0.0, 1e-45, -3.0])
    t = torch.randn(1001, generator=g)
    t[:6] = torch.tensor([1.0, 1.0, -1.0, -1.0, 0.0, -0.0])
    as_bits = lambda x: x.view(torch.int32)  # noqa: E731
    for flip in (False, True):
        out = torch.empty_like(w)
        layers._COMPILED.gate(out.numpy(), w.numpy(), t.numpy(), flip)
        ref = torch.addcmul(w, w, (t < 0).float(), value=-2) if flip else (t > 0).float().mul_(w)
        assert torch.equal(as_bits(out), as_bits(ref))
    gy = torch.randn(1001, generator=g)
    pull = -(torch.ones(()) / 7)
    for p in (None, pull):
        got = gy.clone()
        layers._COMPILED.score_grad(got.numpy(), w.numpy(), None if p is None else float(p))
        ref = gy * w if p is None else (gy * w).add_(p)
        assert torch.equal(as_bits(got), as_bits(ref))
    with pytest.raises(ValueError, match="float32"):
        layers._COMPILED.gate(torch.empty(3).numpy(), w.numpy(), t.numpy(), False)
