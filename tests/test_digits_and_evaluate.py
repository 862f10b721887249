import numpy as np
import pytest
import torch
from scipy.stats import wasserstein_distance

from mmcourse.data.digits import load_digits, to_unit
from mmcourse.evaluate import frechet_distance, sliced_wasserstein, wasserstein_1d


def test_digits_splits_are_fixed_disjoint_stratified_and_scaled():
    xtr, ytr = load_digits("train")
    xte, yte = load_digits("test")
    xall, _ = load_digits("all")
    assert xtr.shape == (1438, 1, 8, 8) and xte.shape == (359, 1, 8, 8) and len(xall) == 1797
    assert xtr.dtype == torch.float32 and ytr.dtype == torch.int64
    assert xtr.min() == -1 and xtr.max() == 1
    counts = torch.bincount(yte, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38  # about 20% of each class
    flat_tr = {tuple(r) for r in xtr.flatten(1).tolist()}
    assert sum(tuple(r) in flat_tr for r in xte.flatten(1).tolist()) <= 3  # sklearn has a few exact duplicates
    torch.testing.assert_close(load_digits("test")[0], xte)
    assert to_unit(torch.tensor([-1.0, 0.0, 1.0, 3.0])).tolist() == [0.0, 0.5, 1.0, 1.0]


def test_digits_rejects_unknown_split():
    with pytest.raises(ValueError, match="split must be one of"):
        load_digits("validation")


@pytest.mark.parametrize("n, m", [(50, 50), (37, 101)])
def test_wasserstein_1d_matches_scipy(n, m):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=n), rng.exponential(size=m)
    assert wasserstein_1d(torch.tensor(a), torch.tensor(b)) == pytest.approx(wasserstein_distance(a, b), rel=1e-9)


def test_sliced_wasserstein_sees_a_shift_but_not_a_permutation():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(500, 2, generator=g)
    assert sliced_wasserstein(a, a[torch.randperm(500, generator=g)]) < 1e-12
    shifted = sliced_wasserstein(a, a + torch.tensor([1.0, 0.0]))
    # The mean |<(1,0), u>| over unit directions u in 2-D is 2/pi.
    assert shifted == pytest.approx(2 / np.pi, rel=0.05)


def test_frechet_distance_of_gaussians_matches_the_closed_form():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(20000, 3, generator=g)
    b = torch.randn(20000, 3, generator=g) * 2 + 1
    # |mu|^2 = 3; per dim: 1 + 4 - 2*sqrt(4) = 1 -> trace term 3.
    assert frechet_distance(a, b) == pytest.approx(6.0, rel=0.05)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("samples, groups, argument", [
    (torch.zeros(10, 1, 8), 5, "samples"),
    (torch.zeros(0, 1, 8, 8), 5, "samples"),
    (torch.full((10, 1, 8, 8), float("nan")), 5, "samples"),
    (torch.zeros(10, 1, 8, 8), 3, "groups"),
    (torch.zeros(10, 1, 8, 8), 1, "groups"),
])
def test_score_digits_rejects_bad_input_by_name(samples, groups, argument):
    from mmcourse.evaluate import score_digits

    with pytest.raises(ValueError, match=argument):
        score_digits(samples, groups=groups)


def test_score_digits_of_real_digits_is_confident_and_its_errors_are_finite():
    from mmcourse.data.digits import load_digits
    from mmcourse.evaluate import score_digits

    real, _ = load_digits("test")
    s = score_digits(real[:300], groups=5)
    assert s["confidence_ratio"].value == pytest.approx(s["confidence"].value / s["real_confidence"], rel=1e-6)
    assert s["confidence_ratio"].value > 0.9 and s["min_class_share"].value > 0.05
    assert s["frechet"].value < s["frechet_real_train_vs_test"] + 10 and 0 < s["frechet"].se < s["frechet"].value
