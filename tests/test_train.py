import numpy as np
import pytest
import torch
from torch import nn

from mmcourse.train import History, batched, fit, seed_everything


def _regression(seed: int):
    seed_everything(seed)
    model = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1))
    w = torch.tensor([[1.0], [-2.0], [0.5]])

    def loss_fn(m, g):
        x = torch.randn(32, 3, generator=g)
        return ((m(x) - x @ w) ** 2).mean()

    return model, loss_fn


def test_fit_reduces_the_loss_and_records_every_step():
    model, loss_fn = _regression(0)
    h = fit(model, loss_fn, steps=300, lr=1e-2, seed=0, progress=False)
    assert len(h.loss) == 300
    assert h.final(50) < 0.1 * np.mean(h.loss[:10])


def test_fit_is_deterministic_for_a_seed_and_differs_across_seeds():
    runs = []
    for seed in (0, 0, 1):
        model, loss_fn = _regression(5)
        runs.append(fit(model, loss_fn, steps=30, seed=seed, progress=False).loss)
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_fit_rejects_bad_arguments_by_name():
    model, loss_fn = _regression(0)
    with pytest.raises(ValueError, match="steps"):
        fit(model, loss_fn, steps=0)
    with pytest.raises(ValueError, match="optimizer"):
        fit(model, loss_fn, steps=1, optimizer="lion")
    with pytest.raises(ValueError, match="lr"):
        fit(model, loss_fn, steps=1, lr=-1.0)


def test_fit_stops_on_a_non_finite_loss():
    model, _ = _regression(0)
    with pytest.raises(FloatingPointError, match="step 0"):
        fit(model, lambda m, g: m(torch.randn(2, 3)).sum() * float("nan"), steps=3, progress=False)


def test_history_smoothing_is_a_running_mean():
    h = History(loss=[1.0, 3.0, 5.0, 7.0])
    np.testing.assert_allclose(h.smoothed(2), [1.0, 2.0, 4.0, 6.0])
    assert h.final(2) == 6.0
    with pytest.raises(ValueError, match="empty"):
        History().final()


def test_batched_equals_one_big_call():
    x = torch.randn(10, 4)
    torch.testing.assert_close(batched(lambda t: t * 2, x, batch_size=3), x * 2)
