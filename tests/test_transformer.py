import pytest
import torch

from pipeline.models.transformer import Dropout, MultiHeadAttention, Transformer, key_padding


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


def test_written_out_training_attention_equals_sdpa():
    x, allowed = padded_batch()
    attention = MultiHeadAttention(hidden_size=8, heads=2, dropout=0.0)
    for queries in (None, [0, 4]):
        written_out = attention.train()(x, allowed, queries)  # the CPU training path
        fused = attention.eval()(x, allowed, queries)  # scaled_dot_product_attention
        assert torch.allclose(written_out, fused, atol=1e-6)


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


def test_padding_keys_are_blocked():
    x, allowed = padded_batch()
    transformer = Transformer(layers=2, hidden_size=8, heads=2, dropout=0.0, layer_norm_eps=1e-6).eval()
    changed = x.clone()
    changed[1, 5:] = torch.randn(2, 8)  # the second sequence's padding
    assert torch.allclose(transformer(x, allowed)[1, :5], transformer(changed, allowed)[1, :5], atol=1e-6)
    unmasked = torch.ones_like(allowed)
    assert not torch.allclose(transformer(x, allowed)[1, :5], transformer(changed, unmasked)[1, :5], atol=1e-3)
