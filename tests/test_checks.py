import pytest
import torch

from mmcourse.checks import Case, check, check_box_from_mask
from mmcourse.checks.basics import box_from_mask_reference


def test_checker_accepts_the_reference(capsys):
    assert check_box_from_mask(box_from_mask_reference)
    assert "✓ check_box_from_mask: all 7 cases" in capsys.readouterr().out


def test_checker_rejects_an_off_by_one_and_says_where(capsys):
    def inclusive(mask):  # a classic mistake: x1, y1 inclusive instead of exclusive
        b = box_from_mask_reference(mask)
        return b - torch.tensor([0.0, 0.0, 1.0, 1.0]) * (b.sum() > 0)

    assert not check_box_from_mask(inclusive)
    out = capsys.readouterr().out
    assert "case 1 of 7 (an 8x8 mask with the single pixel (row 3, column 5))" in out
    assert "index [2]: expected 6, got 5" in out


def test_checker_rejects_swapped_axes_on_a_non_square_mask(capsys):
    def swapped(mask):
        return box_from_mask_reference(mask.T)

    assert not check_box_from_mask(swapped)
    assert "case 1 of 7" in capsys.readouterr().out


def test_checker_reports_wrong_shape_and_type(capsys):
    assert not check_box_from_mask(lambda m: torch.zeros(2, 2))
    assert "should have shape (4,), got shape (2, 2)" in capsys.readouterr().out
    assert not check_box_from_mask(lambda m: [0, 0, 0, 0])
    assert "should be a torch.Tensor, got list" in capsys.readouterr().out


def test_checker_reports_a_learner_exception_with_the_input(capsys):
    assert not check_box_from_mask(lambda m: m.nonzero()[0][5])
    assert "your function raised IndexError" in capsys.readouterr().out


def test_not_implemented_propagates_with_a_hint(capsys):
    def todo(mask):
        raise NotImplementedError("exercise: box_from_mask")

    with pytest.raises(NotImplementedError):
        check_box_from_mask(todo)
    assert "not implemented yet" in capsys.readouterr().out


def test_in_place_modification_is_reported(capsys):
    def sneaky(x):
        x.mul_(2)
        return x

    assert not check("check_double", sneaky, lambda x: x * 2, [Case((torch.ones(3),), "ones")])
    assert "changed its input in place" in capsys.readouterr().out


def test_nan_and_tolerance(capsys):
    ref = lambda x: x + 1  # noqa: E731
    cases = [Case((torch.zeros(3),), "zeros")]
    assert check("c", lambda x: x + 1 + 1e-7, ref, cases)
    assert not check("c", lambda x: x * float("nan"), ref, cases)
    assert "NaN" in capsys.readouterr().out


def test_passing_something_that_is_not_a_function():
    with pytest.raises(TypeError, match="pass your function itself"):
        check_box_from_mask(torch.zeros(4))


def test_report_prints_met_or_missed_and_never_raises(capsys):
    import pytest

    from mmcourse.checks.core import report

    report("t", 0.1, "≤ 0.2")
    report("t", 0.3, "≤ 0.2")
    out = capsys.readouterr().out
    assert "t 0.100 (target ≤ 0.2: met)" in out and "t 0.300 (target ≤ 0.2: MISSED)" in out
    with pytest.raises(ValueError, match="target"):
        report("t", 0.1, "<= 0.2")


def test_expect_prints_an_estimate_with_its_standard_error_and_checks_k_se_away(capsys):
    import pytest

    from mmcourse.checks.core import expect, report
    from mmcourse.protocol import Estimate

    est = Estimate(0.9755, 0.0034, 2000)
    expect("captions", est, "≥ 0.95")
    assert capsys.readouterr().out == "captions 0.976 ± 0.003 (target ≥ 0.95)\n"
    expect("captions", est, "≥ 0.95", k_se=2)      # 0.9755 - 0.0068 = 0.9687
    assert capsys.readouterr().out == "captions 0.976 ± 0.003; minus 2 SE = 0.969 (target ≥ 0.95)\n"
    with pytest.raises(AssertionError, match="misses the target ≥ 0.97"):
        expect("captions", est, "≥ 0.97", k_se=2)  # the value clears 0.97, minus 2 SE does not
    expect("captions", est, "≥ 0.97")              # without k_se the value itself is checked
    report("error", Estimate(0.10, 0.02, 50), "≤ 0.13", k_se=2)   # 0.14 > 0.13: upper side
    assert "0.10 ± 0.02; plus 2 SE = 0.14 (target ≤ 0.13: MISSED)" in capsys.readouterr().out
    with pytest.raises(ValueError, match="k_se needs an Estimate"):
        expect("plain", 0.97, "≥ 0.95", k_se=2)
    with pytest.raises(ValueError, match="k_se must be"):
        expect("captions", est, "≥ 0.95", k_se=-1)
    with pytest.raises(ValueError, match="= target"):
        expect("captions", est, "= 0.9755", k_se=1)
