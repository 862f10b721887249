"""The notes' example as a function: faithful loop, determinism, and the fixes' measurable effect."""

import pytest
import torch

from mmcourse.diffusion import NoiseSchedule, SimpleDenoiseNet, TimeMLP, sample
from mmcourse.diffusion.syllabus import ScaledTime, SyllabusHistory, syllabus_data, train_syllabus_style
from mmcourse.evaluate import wasserstein_1d


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

def test_syllabus_data_is_the_notes_uniform_column():
    x = syllabus_data(1000, seed=0)
    assert x.shape == (1000, 1) and x.dtype == torch.float32
    assert 0 <= x.min() and x.max() < 1 and abs(x.mean().item() - 0.5) < 0.03
    assert torch.equal(x, syllabus_data(1000, seed=0)) and not torch.equal(x, syllabus_data(1000, seed=1))


def _run(seed=0, epochs=2, **kw):
    torch.manual_seed(seed)
    model = SimpleDenoiseNet()
    return model, train_syllabus_style(model, syllabus_data(1000), epochs=epochs, seed=seed, progress=False, **kw)


def test_loop_has_the_notes_batches_and_prints_the_last_batch_loss(capsys):
    _, hist = _run(verbose=True)
    lines = capsys.readouterr().out.strip().splitlines()
    assert hist.batches_per_epoch == 32 and len(hist.batch_losses) == 64
    assert hist.batch_sizes[31] == 8 and set(hist.batch_sizes[:31]) == {32}  # 1000 = 31 * 32 + 8
    assert lines == [f"Epoch {e + 1}/2, Loss: {v:.6f}" for e, v in enumerate(hist.printed())]
    assert hist.printed() == [hist.batch_losses[31], hist.batch_losses[63]]
    means = hist.epoch_means()
    assert len(means) == 2 and abs(means[0] - sum(l * b for l, b in zip(hist.batch_losses[:32], hist.batch_sizes[:32])) / 1000) < 1e-9


def test_loop_is_deterministic_for_a_seed():
    m1, h1 = _run(seed=3, verbose=False)
    m2, h2 = _run(seed=3, verbose=False)
    assert h1.batch_losses == h2.batch_losses
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    assert not m1.training  # left in eval mode


def test_the_notes_model_sees_the_raw_step_as_a_float_column():
    seen = []

    class Spy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = SimpleDenoiseNet()

        def forward(self, x, t):
            seen.append(t)
            return self.net(x, t)

    train_syllabus_style(Spy(), syllabus_data(64), timesteps=100, epochs=1, verbose=False, progress=False)
    t = torch.cat(seen)
    assert t.shape == (64, 1) and t.dtype == torch.float32 and t.max() > 50 and torch.equal(t, t.round())


def test_scaled_time_divides_by_T():
    net = SimpleDenoiseNet()
    x = torch.randn(4, 1)
    t = torch.tensor([0, 10, 50, 99])
    torch.testing.assert_close(ScaledTime(net, 100)(x, t), net(x, (t / 100.0)[:, None]))
    torch.testing.assert_close(ScaledTime(net, 100)(x, t[:, None].float()), net(x, (t / 100.0)[:, None]))
    with pytest.raises(ValueError, match="scale"):
        ScaledTime(net, 0)


def test_time_mlp_can_use_the_loop_with_long_t():
    hist = train_syllabus_style(TimeMLP(dim=1, hidden=32, depth=1), syllabus_data(100), epochs=1, t_column=False,
                                verbose=False, progress=False)
    assert len(hist.batch_losses) == 4


@pytest.mark.parametrize("kw, match", [(dict(data=torch.zeros(10)), "data"), (dict(epochs=0), "epochs")])
def test_bad_input_names_the_argument(kw, match):
    args = dict(model=SimpleDenoiseNet(), data=syllabus_data(10), verbose=False, progress=False) | kw
    with pytest.raises(ValueError, match=match):
        train_syllabus_style(**args)
    with pytest.raises(ValueError, match="n must"):
        syllabus_data(0)


@pytest.mark.slow
def test_scaling_t_beats_the_raw_step_on_every_seed():
    """The notebook's claim: t/T gives a lower W1 than the notes' raw step (seeds 0-2)."""
    data, ref = syllabus_data(1000), syllabus_data(2000, seed=1)
    sched = NoiseSchedule.make(100)
    for seed in range(3):
        w = []
        for scaled in (False, True):
            torch.manual_seed(seed)
            net = SimpleDenoiseNet()
            model = ScaledTime(net, 100) if scaled else net
            train_syllabus_style(model, data, epochs=5, seed=seed, verbose=False, progress=False)
            w.append(wasserstein_1d(sample(model, sched, (2000, 1), generator=torch.Generator().manual_seed(seed)), ref))
        assert w[1] < w[0], (seed, w)


def test_history_helpers_on_a_handmade_record():
    h = SyllabusHistory(batch_losses=[1.0, 3.0, 2.0, 4.0], batch_sizes=[3, 1, 3, 1], batches_per_epoch=2)
    assert h.epochs() == 2 and h.printed() == [3.0, 4.0] and h.epoch_means() == [1.5, 2.5]
