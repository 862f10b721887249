import pytest
import torch
import torch.nn.functional as F

from mmcourse.nn import Attention, Block, attention, sincos_pos_embed_2d, timestep_embedding


def test_attention_matches_torch_sdpa_and_rows_sum_to_one():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 8, generator=g) for _ in range(3))
    out, w = attention(q, k, v)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 3, 5))


def test_attention_masks_match_sdpa_for_bool_and_additive_masks():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 2, 4, 8, generator=g) for _ in range(3))
    causal = torch.ones(4, 4, dtype=torch.bool).tril()
    out, w = attention(q, k, v, causal)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True), atol=1e-6, rtol=1e-5)
    assert (w[..., ~causal] == 0).all()
    additive = torch.zeros(4, 4).masked_fill(~causal, float("-inf"))
    torch.testing.assert_close(attention(q, k, v, additive)[0], out)


def test_attention_module_returns_same_output_with_and_without_weights():
    torch.manual_seed(0)
    m = Attention(16, 4)
    x = torch.randn(3, 7, 16)
    out, w = m(x, return_attn=True)
    torch.testing.assert_close(m(x), out, atol=1e-6, rtol=1e-5)
    assert w.shape == (3, 4, 7, 7)
    torch.testing.assert_close(w.sum(-1), torch.ones(3, 4, 7))


def test_block_is_pre_norm_residual_and_keeps_shape():
    torch.manual_seed(0)
    b = Block(16, 2)
    x = torch.randn(2, 5, 16)
    y, w = b(x, return_attn=True)
    assert y.shape == x.shape and w.shape == (2, 2, 5, 5)
    with torch.no_grad():
        h = x + b.attn(b.norm1(x))
        expected = h + b.mlp(b.norm2(h))
    torch.testing.assert_close(y, expected)
    assert b.norm1.eps == 1e-6


def test_bad_shapes_name_the_arguments():
    with pytest.raises(ValueError, match="num_heads"):
        Attention(10, 3)
    with pytest.raises(ValueError, match="q and k"):
        attention(torch.randn(2, 4), torch.randn(2, 5), torch.randn(2, 5))
    with pytest.raises(ValueError, match="dim must be even"):
        timestep_embedding(torch.arange(3), 5)


def test_timestep_embedding_values_and_distinctness():
    e = timestep_embedding(torch.tensor([0, 1, 500]), 32)
    assert e.shape == (3, 32)
    torch.testing.assert_close(e[0], torch.cat([torch.ones(16), torch.zeros(16)]))
    # First frequency is 1: cos(t), sin(t).
    torch.testing.assert_close(e[2, [0, 16]], torch.tensor([torch.cos(torch.tensor(500.0)), torch.sin(torch.tensor(500.0))]))
    assert torch.cdist(e, e).fill_diagonal_(1).min() > 0.1


def test_sincos_pos_embed_2d_shape_and_row_column_halves():
    pe = sincos_pos_embed_2d(16, 3, 4)
    assert pe.shape == (12, 16)
    # Same row -> same first half; same column -> same second half.
    torch.testing.assert_close(pe[0, :8], pe[3, :8])
    torch.testing.assert_close(pe[1, 8:], pe[5, 8:])
