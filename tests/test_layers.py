import torch

from connpack.layers import ConnConv2d, ConnLinear, kept_count, topk_mask


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
