"""Widgets of the diffusion notebooks, and the plain functions behind them.

As everywhere in the course, the work a control triggers is an ordinary callable that returns PNG
bytes and is tested without a browser; the builders (``forward_explorer``, ``trajectory_explorer``)
only wire controls to it. Both views draw one matplotlib figure once and afterwards only update its
artists (image data, point positions, bar heights), so a slider move costs a few tens of
milliseconds: everything expensive (the noise, the reverse trajectory) is computed beforehand.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch

from ..viz import FIG_DPI, WIDGET_PIXEL_RATIO, widget_width
from .schedule import NoiseSchedule

WIDGET_DPI = FIG_DPI * WIDGET_PIXEL_RATIO  # figures are shown at widget_width(figwidth): never scaled up

# Names shown in the schedule picker -> NoiseSchedule.make arguments and T.
SCHEDULES = {
    "linear, T = 1000 (DDPM)": ("linear", 1e-4, 0.02, 1000),
    "linear, T = 100 (the notes' schedule)": ("linear", 1e-4, 0.02, 100),
    "cosine, T = 1000": ("squaredcos_cap_v2", 1e-4, 0.02, 1000),
    "scaled linear, T = 1000 (Stable Diffusion)": ("scaled_linear", 0.00085, 0.012, 1000),
}
HIST_EDGES = np.linspace(-4, 4, 41)


class _Blitter:
    """Redraw only the artists that change: the rest of the figure is rendered once and reused.

    Drawing axes, ticks and labels is most of matplotlib's time; restoring a saved background and
    drawing a few artists on it is what makes a redraw take milliseconds (matplotlib's "blitting").
    """

    def __init__(self, fig, dynamic: list) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        self.fig, self.dynamic = fig, dynamic
        self.canvas = FigureCanvasAgg(fig)
        for a in dynamic:
            a.set_animated(True)  # left out of the background
        self.canvas.draw()
        self.background = self.canvas.copy_from_bbox(fig.bbox)

    def png(self) -> bytes:
        from PIL import Image

        self.canvas.restore_region(self.background)
        for a in self.dynamic:
            self.fig.draw_artist(a)
        buf = io.BytesIO()
        Image.fromarray(np.asarray(self.canvas.buffer_rgba())).save(buf, format="png", compress_level=1)
        return buf.getvalue()


def schedule_by_name(name: str) -> NoiseSchedule:
    """One of :data:`SCHEDULES` by its picker name."""
    if name not in SCHEDULES:
        raise ValueError(f"schedule must be one of {list(SCHEDULES)}, got {name!r}")
    kind, b0, b1, T = SCHEDULES[name]
    return NoiseSchedule.make(T, kind, b0, b1)


def rescale_step(t: int, old_T: int, new_T: int) -> int:
    """The step of a chain of ``new_T`` steps at the same position t / T as step t of ``old_T``."""
    if not 0 <= t <= old_T:
        raise ValueError(f"t must lie in [0, old_T] = [0, {old_T}], got {t}")
    return min(new_T, max(0, round(t * new_T / old_T)))


class ForwardView:
    """The forward-process explorer's picture for a level t and a schedule.

    Four panels: a real digit, a ShapesWorld scene and a 2-D point cloud at noise level t (each
    x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, with one fixed eps per panel), and the
    histogram of all their values against the N(0, 1) density. Data is in [-1, 1]; images are
    shown mapped back to [0, 1] and clipped.

    Levels count as in the paper: t = 0 is the clean data x_0 and t = T the end of the chain, so
    alpha_bar_t is ``alphas_cumprod[t - 1]`` (the code index is t - 1) and 1 at t = 0.

    ``view(t, schedule_name) -> PNG bytes``.
    """

    FIGSIZE = (9.6, 2.9)  # inches, shown at widget_width(9.6) CSS px

    def __init__(self, seed: int = 0) -> None:
        import matplotlib.pyplot as plt
        from matplotlib.figure import Figure

        from ..data.digits import load_digits
        from ..data.shapes import ShapesWorld
        from .data2d import two_moons

        self.schedules = {name: schedule_by_name(name) for name in SCHEDULES}
        g = torch.Generator().manual_seed(seed)
        digits, _ = load_digits("test")
        self.x0 = {
            "digit": digits[seed % len(digits)][0],  # (8, 8)
            "scene": ShapesWorld().sample(1, seed=seed, split="train").images[0] * 2 - 1,  # (3, 32, 32)
            "cloud": two_moons(600, seed=seed),  # (600, 2)
        }
        self.noise = {k: torch.randn(v.shape, generator=g) for k, v in self.x0.items()}

        fig = Figure(figsize=self.FIGSIZE, dpi=WIDGET_DPI)
        axes = fig.subplots(1, 4, gridspec_kw={"width_ratios": [1, 1, 1, 1.4]})
        self.digit_im = axes[0].imshow(np.zeros((8, 8)), cmap="gray", vmin=0, vmax=1)
        self.scene_im = axes[1].imshow(np.zeros((32, 32, 3)))
        self.cloud = axes[2].scatter(*self.x0["cloud"].T, s=2, c="tab:blue")
        axes[2].set_xlim(-3.5, 3.5)
        axes[2].set_ylim(-3.5, 3.5)
        axes[2].set_aspect("equal")
        for ax, title in zip(axes[:3], ["digit", "ShapesWorld scene", "two moons (2-D)"]):
            ax.set_title(title, fontsize=11)
            ax.set_xticks([])
            ax.set_yticks([])
        self.hist = axes[3].stairs(np.zeros(len(HIST_EDGES) - 1), HIST_EDGES, fill=True, color="tab:gray",
                                   alpha=0.7, label="all values of x_t")
        xs = np.linspace(-4, 4, 200)
        axes[3].plot(xs, np.exp(-xs**2 / 2) / math.sqrt(2 * math.pi), color="tab:red", lw=1.5, label="N(0, 1)")
        axes[3].set_ylim(0, 1.6)
        axes[3].set_yticks([0, 0.5, 1.0, 1.5])
        axes[3].legend(fontsize=10, loc="upper right")
        axes[3].tick_params(labelsize=10)
        self.title = fig.suptitle("", fontsize=12)
        fig.subplots_adjust(left=0.01, right=0.99, bottom=0.11, top=0.8, wspace=0.3)
        self.fig = fig
        self.blit = _Blitter(fig, [self.digit_im, self.scene_im, self.cloud, self.hist, self.title])
        plt.close("all")  # nothing of this figure should reach the notebook's inline output

    def T(self, schedule_name: str) -> int:
        """The number of steps of the named schedule."""
        if schedule_name not in self.schedules:
            raise ValueError(f"schedule_name must be one of {list(self.schedules)}, got {schedule_name!r}")
        return len(self.schedules[schedule_name])

    def alpha_bar(self, t: int, schedule_name: str) -> torch.Tensor:
        """alpha_bar_t of the named schedule for level t in [0, T] (1 at t = 0, the clean data)."""
        T = self.T(schedule_name)
        if not isinstance(t, (int, np.integer)) or not 0 <= t <= T:
            raise ValueError(f"t must be an int in [0, {T}] for {schedule_name!r}, got {t!r}")
        table = self.schedules[schedule_name].alphas_cumprod
        return table.new_ones(()) if t == 0 else table[int(t) - 1]  # code index t - 1

    def noisy(self, t: int, schedule_name: str) -> dict[str, torch.Tensor]:
        """x_t of the three inputs at level t (t = 0: the clean data) of the named schedule."""
        a = self.alpha_bar(t, schedule_name)
        return {k: a.sqrt() * x0 + (1 - a).sqrt() * self.noise[k] for k, x0 in self.x0.items()}

    def __call__(self, t: int, schedule_name: str = next(iter(SCHEDULES))) -> bytes:
        xt = self.noisy(t, schedule_name)
        self.digit_im.set_data(((xt["digit"] + 1) / 2).clamp(0, 1).numpy())
        self.scene_im.set_data(((xt["scene"] + 1) / 2).clamp(0, 1).permute(1, 2, 0).numpy())
        self.cloud.set_offsets(xt["cloud"].numpy())
        values = torch.cat([v.flatten() for v in xt.values()]).numpy()
        counts, _ = np.histogram(values, bins=HIST_EDGES)
        density = counts / (len(values) * np.diff(HIST_EDGES))
        self.hist.set_data(density)
        a = self.alpha_bar(t, schedule_name).item()
        # Plain Unicode, not mathtext: parsing TeX on every move would cost ~150 ms.
        self.title.set_text(f"t = {t} of T = {self.T(schedule_name)}     ᾱₜ = {a:.4f}     "
                            f"signal √ᾱₜ = {math.sqrt(a):.3f}     noise √(1 − ᾱₜ) = {math.sqrt(1 - a):.3f}")
        return self.blit.png()


def forward_explorer(seed: int = 0):
    """A t slider (0 = clean data ... T) and a schedule picker driving :class:`ForwardView`.

    Picking a schedule with another T moves the slider to the same position t / T.
    """
    import ipywidgets as W

    view = ForwardView(seed=seed)
    first = next(iter(SCHEDULES))
    t = W.IntSlider(value=100, min=0, max=view.T(first), description="t", continuous_update=True,
                    layout=W.Layout(width="420px"))
    t.add_class("mmcourse-t")
    name = W.Dropdown(options=list(SCHEDULES), value=first, description="schedule",
                      layout=W.Layout(width="420px"))
    name.add_class("mmcourse-schedule")
    image = W.Image(format="png", value=view(t.value, name.value),
                    layout=W.Layout(width=widget_width(ForwardView.FIGSIZE[0])))
    image.add_class("mmcourse-forward")
    moving = [False]  # True while the slider is rescaled: skip the intermediate redraws

    def update(_=None) -> None:
        if not moving[0]:
            image.value = view(t.value, name.value)

    def on_schedule(change) -> None:
        old_T, new_T = view.T(change["old"]), view.T(change["new"])
        moving[0] = True
        try:
            value = rescale_step(t.value, old_T, new_T)
            if new_T > t.max:  # widen first, then move; narrow after moving
                t.max, t.value = new_T, value
            else:
                t.value, t.max = value, new_T
        finally:
            moving[0] = False
        update()

    t.observe(update, names="value")
    name.observe(on_schedule, names="value")
    return W.VBox([W.HBox([t, name]), image])


class TrajectoryView:
    """The reverse process of a 2-D model as a flip-book: frame k of a precomputed trajectory.

    Args:
        trajectory: (N + 1, B, 2), x_T first and the final samples last (from ``sample(...,
            return_trajectory=True)``).
        timesteps: the N steps the sampler visited (decreasing); frame k > 0 is the output of
            the step from ``timesteps[k - 1]``.
        data: (M, 2) real data drawn faintly behind the samples.

    Frames are labelled with the paper's levels: the sampler's code index j (0-based) is level
    j + 1, so frame k < N holds x at level ``timesteps[k] + 1`` and the last frame is x_0.

    ``view(k) -> PNG bytes``.
    """

    FIGSIZE = (6.0, 4.4)  # inches, shown at widget_width(6.0) CSS px

    def __init__(self, trajectory: torch.Tensor, timesteps: torch.Tensor, data: torch.Tensor,
                 lim: float = 3.0) -> None:
        import matplotlib.pyplot as plt
        from matplotlib.figure import Figure

        if trajectory.ndim != 3 or trajectory.shape[2] != 2:
            raise ValueError(f"trajectory must have shape (N + 1, B, 2), got {tuple(trajectory.shape)}")
        if len(timesteps) != trajectory.shape[0] - 1:
            raise ValueError(f"timesteps must have N = {trajectory.shape[0] - 1} entries, got {len(timesteps)}")
        self.traj = trajectory.detach().cpu().numpy()
        self.ts = [int(v) for v in timesteps]
        fig = Figure(figsize=self.FIGSIZE, dpi=WIDGET_DPI)
        ax = fig.subplots()
        ax.scatter(*data.T.numpy(), s=1, c="lightgray", label="data")
        self.points = ax.scatter(*self.traj[0].T, s=2, c="tab:blue", label="samples")
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim * 0.75, lim * 0.75)
        ax.set_aspect("equal")
        ax.legend(fontsize=11, loc="upper right", markerscale=4)
        ax.tick_params(labelsize=10)
        self.title = ax.set_title("", fontsize=13)
        fig.subplots_adjust(left=0.07, right=0.98, bottom=0.07, top=0.92)
        self.fig = fig
        self.blit = _Blitter(fig, [self.points, self.title])
        plt.close("all")

    @property
    def num_frames(self) -> int:
        return self.traj.shape[0]

    def level(self, k: int) -> int:
        """The paper's level t of frame k: ``timesteps[k] + 1`` before the last step, 0 after it."""
        return 0 if k == self.num_frames - 1 else self.ts[k] + 1

    def label(self, k: int) -> str:
        n = self.num_frames - 1
        if k == 0:
            return f"start: x_{self.level(0)} ~ N(0, I)   (0 of {n} steps)"
        if k == n:
            return f"x_0, the samples   ({n} of {n} steps)"
        return f"x_{self.level(k)}   ({k} of {n} steps)"

    def __call__(self, k: int) -> bytes:
        if not isinstance(k, (int, np.integer)) or not 0 <= k < self.num_frames:
            raise ValueError(f"k must be an int in [0, {self.num_frames}), got {k!r}")
        self.points.set_offsets(self.traj[k])
        self.title.set_text(self.label(int(k)))
        return self.blit.png()


def trajectory_explorer(trajectory: torch.Tensor, timesteps: torch.Tensor, data: torch.Tensor):
    """A step slider over a precomputed reverse trajectory (see :class:`TrajectoryView`)."""
    import ipywidgets as W

    view = TrajectoryView(trajectory, timesteps, data)
    k = W.IntSlider(value=0, min=0, max=view.num_frames - 1, description="step", continuous_update=True,
                    layout=W.Layout(width=widget_width(TrajectoryView.FIGSIZE[0])))
    k.add_class("mmcourse-step")
    image = W.Image(format="png", value=view(0), layout=W.Layout(width=widget_width(TrajectoryView.FIGSIZE[0])))
    image.add_class("mmcourse-trajectory")
    k.observe(lambda _: setattr(image, "value", view(k.value)), names="value")
    return W.VBox([k, image])

