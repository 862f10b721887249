"""The budget's machine-speed scale: clamped, measured on the notebooks' own kind of work."""

import pytest

from mmcourse.tools import calibrate


def test_slowdown_is_the_step_time_ratio_clamped_to_one_and_three():
    ref = calibrate.REFERENCE_STEP_MS
    assert calibrate.slowdown_from(ref / 2) == 1.0  # a fast machine never loosens the budget
    assert calibrate.slowdown_from(ref) == 1.0
    assert calibrate.slowdown_from(2 * ref) == pytest.approx(2.0)
    assert calibrate.slowdown_from(10 * ref) == calibrate.MAX_SLOWDOWN == 3.0


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_slowdown_rejects_a_non_positive_time(bad):
    with pytest.raises(ValueError, match="ms must be a positive step time"):
        calibrate.slowdown_from(bad)


def test_step_time_is_measured_on_one_thread_and_restores_the_thread_count():
    import torch

    before = torch.get_num_threads()
    ms = calibrate.step_ms(steps=2, repeats=1)
    assert 0 < ms < 10_000
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="steps and repeats"):
        calibrate.step_ms(steps=0)


def test_describe_prints_raw_reference_and_scaled_budget():
    text = calibrate.describe(50.0, 2.0, 60.0)
    assert "50 ms" in text and "25 ms" in text and "= 120 s" in text


def test_a_step_time_measured_before_the_run_is_read_from_the_environment():
    ref = calibrate.REFERENCE_STEP_MS
    assert calibrate.from_env({}) is None and calibrate.from_env({calibrate.STEP_MS_ENV: " "}) is None
    assert calibrate.from_env({calibrate.STEP_MS_ENV: f"{2 * ref}"}) == (2 * ref, pytest.approx(2.0))
    for bad in ("fast", "0", "-3", "nan", "inf"):
        with pytest.raises(ValueError, match=calibrate.STEP_MS_ENV):
            calibrate.from_env({calibrate.STEP_MS_ENV: bad})


def test_main_rejects_unknown_arguments(capsys):
    assert calibrate.main(["--fast"]) == 2
    assert "usage" in capsys.readouterr().err
