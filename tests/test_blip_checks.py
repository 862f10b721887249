"""The BLIP notebook's exercise checkers accept the course's answers and reject common mistakes."""

from __future__ import annotations

import pytest
import torch

from mmcourse.blip import attention_mask, hard_negative_weights, mode_mask, nucleus_mask
from mmcourse.checks.blip import check_decoder_mask, check_hard_negative_weights, check_nucleus_mask


def test_checkers_accept_the_course_versions(capsys):
    assert check_hard_negative_weights(hard_negative_weights)
    assert check_decoder_mask(lambda t, n, pad: mode_mask(t, n, pad, "decoder"))
    assert check_nucleus_mask(nucleus_mask)
    assert capsys.readouterr().out.count("✓") == 3


def test_hard_negative_checker_rejects_a_diagonal_only_mask(capsys):
    def diagonal_only(sim, ids):
        s = sim.float().clone()
        s.fill_diagonal_(float("-inf"))
        return s.T.softmax(1), s.softmax(1)

    def no_transpose(sim, ids):
        w_t2i, w_i2t = hard_negative_weights(sim, ids)
        return w_i2t, w_i2t

    def nan_rows(sim, ids):
        same = ids[:, None] == ids[None, :]
        s = sim.float().masked_fill(same, float("-inf"))
        return s.T.softmax(1), s.softmax(1)

    for wrong in (diagonal_only, no_transpose, nan_rows):
        assert not check_hard_negative_weights(wrong)
    assert capsys.readouterr().out.count("✗") == 3


def test_decoder_mask_checker_rejects_missing_parts(capsys):
    def no_causal(t, n, pad):
        return mode_mask(t, n, pad, "encoder")

    def no_cross(t, n, pad):
        m = mode_mask(t, n, pad, "decoder")
        m[:, :, t.shape[1]:] = False
        return m

    def pad_visible(t, n, pad):
        L = t.shape[1]
        causal = torch.ones(L, L, dtype=torch.bool).tril().expand(len(t), L, L)
        return torch.cat([causal, torch.ones(len(t), L, n, dtype=torch.bool)], 2)

    for wrong in (no_causal, no_cross, pad_visible):
        assert not check_decoder_mask(wrong)
    assert capsys.readouterr().out.count("✗") == 3
    assert torch.equal(mode_mask(torch.tensor([[5, 6, 0]]), 2, 0, "decoder")[:, :, :3],
                       attention_mask(torch.tensor([[5, 6, 0]]), 0, causal=True)[:, 0])


def test_nucleus_checker_rejects_off_by_one(capsys):
    def excludes_crossing_token(logits, top_p):  # keeps only tokens whose cumulative mass stays <= top_p
        p, order = logits.softmax(-1).sort(-1, descending=True)
        keep = p.cumsum(-1) <= top_p
        return torch.zeros_like(keep).scatter(-1, order, keep)

    def unsorted(logits, top_p):
        p = logits.softmax(-1)
        return (p.cumsum(-1) - p) < top_p

    for wrong in (excludes_crossing_token, unsorted):
        assert not check_nucleus_mask(wrong)
    assert capsys.readouterr().out.count("✗") == 2


def test_mode_mask_bad_input():
    with pytest.raises(ValueError, match="mode"):
        mode_mask(torch.tensor([[1, 2]]), 2, 0, "causal")
    with pytest.raises(ValueError, match="num_image_tokens"):
        mode_mask(torch.tensor([[1, 2]]), 0, 0, "decoder")
