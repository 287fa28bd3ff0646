import copy

import pytest
import torch
import torch.nn.functional as F

from pipeline.models.transformer import Dropout, MultiHeadAttention, ScaleAndDrop, Transformer, key_padding


def padded_batch() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    valid = torch.tensor([[True] * 7, [True] * 5 + [False] * 2, [True] * 3 + [False] * 4])
    return torch.randn(3, 7, 8), key_padding(valid)


def test_dropout_drops_each_element_independently_with_probability_p():
    torch.manual_seed(0)
    dropout = Dropout(0.1).train()
    x = torch.ones(2_000_000, requires_grad=True)
    y = dropout(x)
    dropped = y == 0
    assert dropped.float().mean().item() == pytest.approx(0.1, abs=2e-3)
    assert torch.allclose(y[~dropped], torch.tensor(1 / 0.9))  # inverted dropout keeps the expectation
    pairs = dropped.view(-1, 2)
    assert pairs.all(dim=1).float().mean().item() == pytest.approx(0.01, abs=1e-3)  # independent neighbours
    y.sum().backward()
    assert torch.equal(x.grad == 0, dropped)
    assert not torch.equal(dropout(x) == 0, dropped)  # a fresh draw each call
    assert torch.equal(dropout.eval()(x), x)


@pytest.mark.parametrize("transposed", [False, True])
def test_dropout_keeps_positions_not_a_mask_and_gives_the_masks_outputs_and_gradients(transposed):
    torch.manual_seed(0)
    x = torch.randn(6, 5, 4)
    x = (x.transpose(0, 2) if transposed else x).requires_grad_()  # a non-contiguous input keeps its logical order
    dropped = torch.randint(x.numel(), (30,))
    mask = torch.full((x.numel(),), 2.0).index_fill_(0, dropped, 0).view(x.shape)
    upstream = torch.randn(x.shape)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        y = ScaleAndDrop.apply(x, dropped, 2.0)
    assert [t.numel() for t in saved] == [30]  # the positions, not an n-element mask
    (gradient,) = torch.autograd.grad(y, x, upstream)
    reference = x.detach().requires_grad_()
    expected = reference * mask
    (expected_gradient,) = torch.autograd.grad(expected, reference, upstream)
    assert torch.equal(y, expected) and torch.equal(gradient, expected_gradient)


def attention_pair() -> tuple[MultiHeadAttention, MultiHeadAttention]:
    """The same weights computed written out and by scaled_dot_product_attention."""
    torch.manual_seed(1)
    explicit = MultiHeadAttention(hidden_size=8, heads=2, dropout=0.0)
    sdpa = copy.deepcopy(explicit)
    explicit.implementation, sdpa.implementation = "explicit", "sdpa"
    return explicit, sdpa


@pytest.mark.parametrize("queries", [None, [0, 4]])
def test_explicit_and_sdpa_attention_give_the_same_outputs_and_gradients(queries):
    x, allowed = padded_batch()
    results = []
    for attention in attention_pair():
        inputs = x.clone().requires_grad_()
        attention.train()(inputs, allowed, queries).square().sum().backward()
        results.append((inputs.grad, *(p.grad for p in attention.parameters())))
    for explicit, sdpa in zip(*results):
        assert torch.allclose(explicit, sdpa, atol=1e-5)


@pytest.mark.parametrize("implementation", ["explicit", "sdpa"])
def test_both_attentions_drop_probabilities_in_training_only(implementation):
    x, allowed = padded_batch()
    attention = MultiHeadAttention(hidden_size=8, heads=2, dropout=0.5)
    attention.implementation = implementation
    assert not torch.allclose(attention.train()(x, allowed), attention.train()(x, allowed))  # a fresh mask each call
    assert torch.equal(attention.eval()(x, allowed), attention.eval()(x, allowed))


def test_auto_writes_attention_out_only_when_training_on_cpu(monkeypatch):
    x, allowed = padded_batch()
    calls = []
    fused = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or fused(*a, **k))
    attention = MultiHeadAttention(hidden_size=8, heads=2, dropout=0.0)
    assert attention.implementation == "auto"
    attention.train()(x, allowed)
    assert not calls
    attention.eval()(x, allowed)
    assert len(calls) == 1
    assert not attention.explicit(torch.device("cuda")) and attention.train().explicit(torch.device("cpu"))


@pytest.mark.parametrize("norm_first", [False, True])
def test_reading_only_some_positions_computes_the_same_outputs(norm_first):
    x, allowed = padded_batch()
    transformer = Transformer(layers=2, hidden_size=8, heads=2, dropout=0.1, layer_norm_eps=1e-6, norm_first=norm_first).eval()
    full = transformer(x, allowed)
    assert torch.allclose(transformer(x, allowed, outputs=[0, 4]), full[:, [0, 4]], atol=1e-6)
    assert not torch.allclose(transformer(x[:, :3], allowed[:, :3, :3], outputs=[0]), full[:, [0]], atol=1e-3)


def test_pre_ln_keeps_the_residual_stream_unnormalised_and_normalises_once_at_the_end():
    x, allowed = padded_batch()
    x = 5 * x + 3  # far from unit scale
    pre = Transformer(layers=2, hidden_size=8, heads=2, dropout=0.0, layer_norm_eps=1e-6, norm_first=True).eval()
    post = Transformer(layers=2, hidden_size=8, heads=2, dropout=0.0, layer_norm_eps=1e-6).eval()
    for transformer in (pre, post):  # every sublayer adds nothing: only where the LayerNorms sit is left
        for layer in transformer.layers:
            for output in (layer.attention.out, layer.feed_forward[3]):
                torch.nn.init.zeros_(output.weight), torch.nn.init.zeros_(output.bias)
    assert torch.allclose(pre.layers[0](x, allowed), x)  # a pre-LN layer passes the stream through
    assert not torch.allclose(post.layers[0](x, allowed), x, atol=1e-2)  # a post-LN layer normalises it
    normalised = torch.nn.functional.layer_norm(x, (8,), eps=1e-6)
    assert torch.allclose(pre(x, allowed), normalised, atol=1e-5) and torch.allclose(post(x, allowed), normalised, atol=1e-5)


@pytest.mark.parametrize("implementation", ["explicit", "sdpa"])
def test_padding_keys_are_blocked(implementation):
    x, allowed = padded_batch()
    transformer = Transformer(layers=2, hidden_size=8, heads=2, dropout=0.0, layer_norm_eps=1e-6).eval()
    for layer in transformer.layers:
        layer.attention.implementation = implementation
    changed = x.clone()
    changed[1, 5:] = torch.randn(2, 8)  # the second sequence's padding
    assert torch.allclose(transformer(x, allowed)[1, :5], transformer(changed, allowed)[1, :5], atol=1e-6)
    unmasked = torch.ones_like(allowed)
    assert not torch.allclose(transformer(x, allowed)[1, :5], transformer(changed, unmasked)[1, :5], atol=1e-3)
