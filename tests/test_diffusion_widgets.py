"""Diffusion widgets: the callbacks return PNGs, follow their inputs, and redraw fast; 2-D data."""

import statistics
import time

import pytest
import torch

from mmcourse.diffusion import NoiseSchedule
from mmcourse.diffusion.data2d import make_2d, spiral, two_moons
from mmcourse.diffusion.widgets import (
    SCHEDULES,
    ForwardView,
    TrajectoryView,
    forward_explorer,
    schedule_by_name,
    trajectory_explorer,
)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def forward_view():
    return ForwardView(seed=0)


@pytest.fixture(scope="module")
def trajectory():
    traj = torch.randn(11, 300, 2, generator=torch.Generator().manual_seed(0))
    return traj, torch.arange(9, -1, -1), two_moons(300)


def test_forward_view_returns_a_png_that_changes_with_t_and_schedule(forward_view):
    names = list(SCHEDULES)
    a, b, c = forward_view(10, names[0]), forward_view(400, names[0]), forward_view(400, names[1])
    assert a.startswith(PNG) and len({a, b, c}) == 3
    assert forward_view(400, names[1]) == c  # fixed noise: same controls, same picture


def test_forward_view_noises_with_the_closed_form(forward_view):
    name = list(SCHEDULES)[1]
    xt = forward_view.noisy(250, name)
    s = schedule_by_name(name)
    for k, x0 in forward_view.x0.items():
        torch.testing.assert_close(xt[k], s.add_noise(x0[None], forward_view.noise[k][None], 250)[0])


@pytest.mark.parametrize("t, name, match", [(1000, "cosine", "t must"), (-1, "cosine", "t must"),
                                            (5, "nope", "schedule_name")])
def test_forward_view_bad_controls(forward_view, t, name, match):
    with pytest.raises(ValueError, match=match):
        forward_view(t, name)


def test_schedule_by_name_rejects_unknown_names():
    assert isinstance(schedule_by_name("cosine"), NoiseSchedule)
    with pytest.raises(ValueError, match="schedule must be one of"):
        schedule_by_name("sigmoid")


def _median_ms(fn, args):
    fn(*args[0])
    times = []
    for a in args:
        t0 = time.perf_counter()
        fn(*a)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def test_callbacks_redraw_well_under_100_ms(forward_view, trajectory):
    """Median over several moves; the bench records median and max on a quiet machine."""
    names = list(SCHEDULES)
    assert _median_ms(forward_view, [(t, names[t % 3]) for t in range(0, 1000, 100)]) < 100
    view = TrajectoryView(*trajectory)
    assert _median_ms(view, [(k,) for k in range(11)]) < 100


def test_trajectory_view_frames_and_labels(trajectory):
    view = TrajectoryView(*trajectory)
    assert view.num_frames == 11
    first, last = view(0), view(10)
    assert first.startswith(PNG) and first != last
    assert "x_T" in view.label(0) and "x_0" in view.label(10) and "t = 5" in view.label(4)
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
    assert isinstance(slider, W.IntSlider) and slider.max == 999 and isinstance(image, W.Image)
    before = image.value
    slider.value = 900
    assert image.value != before
    dropdown = box.children[0].children[1]
    assert list(dropdown.options) == list(SCHEDULES)

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
