"""Diffusion widgets: the callbacks return PNGs and follow their inputs (redraw time is measured by `make bench`); 2-D data."""

import pytest
import torch

from mmcourse.diffusion import NoiseSchedule
from mmcourse.diffusion.data2d import distance_to_data, make_2d, spiral, two_moons
from mmcourse.diffusion.widgets import (
    SCHEDULES,
    ForwardView,
    TrajectoryView,
    forward_explorer,
    rescale_step,
    schedule_by_name,
    trajectory_explorer,
)
from mmcourse.viz import WIDGET_PIXEL_RATIO, png_size


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

PNG = b"\x89PNG\r\n\x1a\n"
NAMES = list(SCHEDULES)
LONG = [n for n in NAMES if SCHEDULES[n][3] == 1000]  # the T = 1000 schedules
NOTES = "linear, T = 100 (the notes' schedule)"


@pytest.fixture(scope="module")
def forward_view():
    return ForwardView(seed=0)


@pytest.fixture(scope="module")
def trajectory():
    traj = torch.randn(11, 300, 2, generator=torch.Generator().manual_seed(0))
    return traj, torch.arange(9, -1, -1), two_moons(300)


def test_forward_view_returns_a_png_that_changes_with_t_and_schedule(forward_view):
    a, b, c = forward_view(10, LONG[0]), forward_view(400, LONG[0]), forward_view(400, LONG[1])
    assert a.startswith(PNG) and len({a, b, c}) == 3
    assert forward_view(400, LONG[1]) == c  # fixed noise: same controls, same picture


def test_widget_pictures_are_rendered_at_twice_their_css_size(forward_view, trajectory):
    """Sharp text: the PNG has WIDGET_PIXEL_RATIO device pixels per CSS pixel of the shown width."""
    box = forward_explorer()
    image = box.children[1]
    assert png_size(image.value)[0] == pytest.approx(WIDGET_PIXEL_RATIO * int(image.layout.width[:-2]), abs=2)
    slider, image = trajectory_explorer(*trajectory).children
    assert png_size(image.value)[0] == pytest.approx(WIDGET_PIXEL_RATIO * int(image.layout.width[:-2]), abs=2)


@pytest.mark.parametrize("name", NAMES)
def test_forward_view_counts_levels_as_the_paper(forward_view, name):
    """Level t uses alpha_bar_t = alphas_cumprod[t - 1]; t = 0 is the clean data; t = T the end."""
    s = schedule_by_name(name)
    T = len(s)
    for t in (1, T // 4, T):
        xt = forward_view.noisy(t, name)
        for k, x0 in forward_view.x0.items():
            torch.testing.assert_close(xt[k], s.add_noise(x0[None], forward_view.noise[k][None], t - 1)[0])
    for k, x0 in forward_view.noisy(0, name).items():
        torch.testing.assert_close(x0, forward_view.x0[k])


@pytest.mark.parametrize("t, name, match", [(1001, LONG[1], "t must"), (-1, LONG[1], "t must"),
                                            (101, NOTES, r"t must be an int in \[0, 100\]"),
                                            (5, "nope", "schedule_name")])
def test_forward_view_bad_controls(forward_view, t, name, match):
    with pytest.raises(ValueError, match=match):
        forward_view(t, name)


def test_the_notes_schedule_is_in_the_picker_and_stops_short_of_noise():
    assert NOTES in SCHEDULES
    s = schedule_by_name(NOTES)
    assert len(s) == 100 and abs(s.alphas_cumprod[-1].item() - 0.364) < 0.001  # notebook 01, section 4


def test_schedule_by_name_rejects_unknown_names():
    assert isinstance(schedule_by_name(LONG[1]), NoiseSchedule)
    with pytest.raises(ValueError, match="schedule must be one of"):
        schedule_by_name("sigmoid")


@pytest.mark.parametrize("t, old, new, want", [(500, 1000, 100, 50), (50, 100, 1000, 500), (0, 1000, 100, 0),
                                               (1000, 1000, 100, 100), (999, 1000, 100, 100), (7, 100, 100, 7)])
def test_rescale_step_keeps_the_position_along_the_chain(t, old, new, want):
    assert rescale_step(t, old, new) == want


def test_rescale_step_rejects_a_step_off_the_chain():
    with pytest.raises(ValueError, match="t must lie in"):
        rescale_step(101, 100, 1000)


def test_trajectory_view_frames_and_labels(trajectory):
    view = TrajectoryView(*trajectory)
    assert view.num_frames == 11
    first, last = view(0), view(10)
    assert first.startswith(PNG) and first != last
    # The sampler's code steps 9..0 are the paper's levels 10..1: frame k holds x_(10 - k).
    assert [view.level(k) for k in range(11)] == list(range(10, -1, -1))
    assert "x_10 ~ N(0, I)" in view.label(0) and "x_0" in view.label(10) and "x_6 " in view.label(4)
    with pytest.raises(ValueError, match="k must"):
        view(11)


def test_trajectory_view_checks_shapes(trajectory):
    traj, ts, data = trajectory
    with pytest.raises(ValueError, match="trajectory"):
        TrajectoryView(traj[..., :1], ts, data)
    with pytest.raises(ValueError, match="timesteps"):
        TrajectoryView(traj, ts[:-1], data)


def test_builders_wire_a_slider_to_the_image(trajectory):
    import ipywidgets as W

    box = forward_explorer()
    slider = box.children[0].children[0]
    image = box.children[1]
    assert isinstance(slider, W.IntSlider) and (slider.min, slider.max) == (0, 1000) and isinstance(image, W.Image)
    before = image.value
    slider.value = 900
    assert image.value != before
    dropdown = box.children[0].children[1]
    assert list(dropdown.options) == NAMES
    # Switching to the notes' T = 100 keeps the position along the chain, and back again.
    dropdown.value = NOTES
    assert (slider.value, slider.max) == (90, 100)
    assert bytes(image.value) == ForwardView(seed=0)(90, NOTES)
    dropdown.value = LONG[0]
    assert (slider.value, slider.max) == (900, 1000)

    box = trajectory_explorer(*trajectory)
    slider, image = box.children
    before = image.value
    slider.value = 10
    assert slider.max == 10 and image.value != before


@pytest.mark.parametrize("fn", [two_moons, spiral])
def test_2d_data_is_seeded_and_scaled(fn):
    x = fn(1001, seed=4)
    assert x.shape == (1001, 2) and x.dtype == torch.float32
    assert torch.equal(x, fn(1001, seed=4)) and not torch.equal(x, fn(1001, seed=5))
    assert x.abs().max() < 2.5 and x.std(0).min() > 0.3


def test_make_2d_and_bad_input():
    assert make_2d("moons", 10).shape == (10, 2)
    with pytest.raises(ValueError, match="name must be one of"):
        make_2d("circles", 10)
    with pytest.raises(ValueError, match="n must"):
        two_moons(0)


def test_distance_to_data_is_zero_on_the_data_and_grows_with_blur():
    data = two_moons(2000, seed=0)
    assert distance_to_data(data[:500], data) == 0.0
    g = torch.Generator().manual_seed(0)
    near = distance_to_data(data + 0.02 * torch.randn(data.shape, generator=g), data, chunk=300)
    far = distance_to_data(data + 0.1 * torch.randn(data.shape, generator=g), data)
    assert 0 < near < far
    shifted = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    assert distance_to_data(shifted, torch.zeros(1, 2)) == 2.5  # (0 + 5) / 2
    with pytest.raises(ValueError, match="share D"):
        distance_to_data(data, data[:, :1])
