import math

import pytest
import torch

from mmcourse.protocol import PARTS, TOPICS, Estimate, mean, paired_difference, proportion, seeds


def test_parts_and_topics_never_share_a_seed():
    every = [s for t in TOPICS for p in PARTS for s in seeds(t, p, 100)]
    assert len(every) == len(set(every))
    # far from the small seeds (0-10, 10_001) the notebooks and training runs use
    assert min(every) > 10_001


def test_the_first_seeds_come_back_when_fewer_are_asked_for():
    assert seeds("sam", "test", 2) == seeds("sam", "test")[:2]


@pytest.mark.parametrize("kw,match", [(dict(topic="nope", part="val"), "topic"), (dict(topic="sam", part="train"), "part"),
                                      (dict(topic="sam", part="val", k=0), "k"), (dict(topic="sam", part="val", k=True), "k")])
def test_bad_arguments_name_themselves(kw, match):
    with pytest.raises(ValueError, match=match):
        seeds(**kw)


def test_proportion_is_the_binomial_closed_form():
    est = proportion(torch.tensor([True] * 90 + [False] * 10))
    assert est.value == pytest.approx(0.9) and est.n == 100
    assert est.se == pytest.approx(math.sqrt(0.9 * 0.1 / 100))
    with pytest.raises(ValueError, match="outcomes"):
        proportion(torch.tensor([0.5, 1.0]))
    with pytest.raises(ValueError, match="outcomes"):
        proportion([])


def test_mean_se_is_std_over_sqrt_n():
    x = torch.tensor([0.1, 0.5, 0.9, 0.7])
    est = mean(x)
    assert est.value == pytest.approx(0.55)
    assert est.se == pytest.approx(float(x.double().std()) / 2)
    with pytest.raises(ValueError, match="finite"):
        mean([0.1, float("nan")])


def test_describe_rounds_to_the_standard_error_and_names_the_target():
    assert Estimate(0.9412, 0.0123, 500).describe(target=0.95) == "0.94 ± 0.01 (target ≥ 0.95)"
    assert Estimate(0.9581, 0.0046, 2500).describe(target=0.95) == "0.958 ± 0.005 (target ≥ 0.95)"
    assert Estimate(0.123, 0.004, 100).describe(target=0.2, higher_is_better=False) == "0.123 ± 0.004 (target ≤ 0.2)"
    assert str(Estimate(0.5, 0.0, 3)) == "0.5000 ± 0.0000"


def test_clears_needs_k_standard_errors_and_agreement_uses_both_errors():
    est = Estimate(0.96, 0.004, 2000)
    assert est.clears(0.95) and not est.clears(0.955)
    assert not Estimate(0.94, 0.001, 10).clears(0.95)
    assert Estimate(0.95, 0.004, 1).agrees_with(Estimate(0.966, 0.004, 1))      # 16e-3 <= 3 * 5.66e-3
    assert not Estimate(0.95, 0.004, 1).agrees_with(Estimate(0.970, 0.004, 1))


def test_paired_difference_counts_only_the_items_that_differ():
    # 100 paired outcomes: 10 right only under a, 2 right only under b, the rest alike
    a = torch.tensor([True] * 10 + [False] * 2 + [True] * 80 + [False] * 8)
    b = torch.tensor([False] * 10 + [True] * 2 + [True] * 80 + [False] * 8)
    est = paired_difference(a, b)
    assert est.value == pytest.approx(0.08) and est.n == 100
    d = torch.tensor([1.0] * 10 + [-1.0] * 2 + [0.0] * 88, dtype=torch.float64)
    assert est.se == pytest.approx(float(d.std()) / 10)
    # pairing: smaller than the error of two independent shares (0.90 and 0.82 on 100 each: 0.049)
    assert est.se < 0.75 * math.hypot(proportion(a).se, proportion(b).se)
    assert paired_difference(a, a).value == 0 and paired_difference(a, a).se == 0
    with pytest.raises(ValueError, match="a and b"):
        paired_difference(a, b[:-1])
    with pytest.raises(ValueError, match="a must"):
        paired_difference([], [])


def test_binomial_matches_proportion_and_checks_its_arguments():
    from mmcourse.protocol import binomial

    assert binomial(0.9, 100) == proportion(torch.tensor([True] * 90 + [False] * 10))
    for kw, match in ((dict(share=0.5, n=0), "n"), (dict(share=1.5, n=10), "share"), (dict(share=0.5, n=True), "n")):
        with pytest.raises(ValueError, match=match):
            binomial(**kw)


def test_share_of_gap_is_the_delta_method_and_grows_with_a_narrow_gap():
    from mmcourse.protocol import share_of_gap

    low, mid, high = Estimate(0.50, 0.01, 900), Estimate(0.60, 0.02, 1000), Estimate(0.70, 0.01, 800)
    est = share_of_gap(low, mid, high)
    assert est.value == pytest.approx(0.5) and est.n == 800
    assert est.se == pytest.approx(math.sqrt(0.02**2 + 0.25 * 0.01**2 + 0.25 * 0.01**2) / 0.2)
    # the same errors over a gap 10x narrower: 10x the standard error
    narrow = share_of_gap(Estimate(0.50, 0.01, 900), Estimate(0.51, 0.02, 1000), Estimate(0.52, 0.01, 800))
    assert narrow.value == pytest.approx(0.5) and narrow.se == pytest.approx(10 * est.se)
    # against a Monte Carlo of the ratio with independent normal errors
    g = torch.Generator().manual_seed(0)
    draw = lambda e: e.value + e.se * torch.randn(200_000, generator=g, dtype=torch.float64)  # noqa: E731
    lo, mi, hi = draw(low), draw(mid), draw(high)
    r = (mi - lo) / (hi - lo)
    assert float(r.std()) == pytest.approx(est.se, rel=0.03)
    with pytest.raises(ValueError, match="gap is 0"):
        share_of_gap(low, mid, low)


def test_load_results_lives_in_the_protocol_and_the_old_import_still_works():
    from mmcourse.protocol import load_results
    from mmcourse.vit.tasks import load_results as from_vit

    assert from_vit is load_results and load_results("blip_capfilt")["models"]


def test_difference_adds_the_variances_of_independent_estimates():
    from mmcourse.protocol import difference

    d = difference(Estimate(0.835, 0.03, 500), Estimate(0.808, 0.04, 400))
    assert d.value == pytest.approx(0.027) and d.se == pytest.approx(0.05) and d.n == 400


def test_binomial_error_is_not_zero_when_every_item_agrees():
    from mmcourse.protocol import binomial

    all_right = binomial(1.0, 130)
    assert all_right.value == 1.0 and all_right.se == pytest.approx(math.sqrt(132 * 2 / 134**2 / 134))
    assert 0.009 < all_right.se < 0.011 and str(all_right) == "1.00 ± 0.01"
    none = binomial(0.0, 130)
    assert none.value == 0.0 and none.se == pytest.approx(all_right.se)
    assert binomial(1.0, 1300).se < all_right.se / 3                 # still shrinks with n
    assert binomial(0.5, 100).se == pytest.approx(0.05)              # inside (0, 1): the usual formula
