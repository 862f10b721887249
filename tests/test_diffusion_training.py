"""Diffusion training recipes and the shipped digits checkpoint."""

import pytest
import torch

from mmcourse import weights
from mmcourse.diffusion import NoiseSchedule, TimeMLP, UNet, sample
from mmcourse.diffusion.train import CHECKPOINT, load_digits_unet, train_2d, train_eps_model


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

def test_train_eps_model_returns_an_ema_copy_in_eval_mode():
    sched = NoiseSchedule.make(50)
    torch.manual_seed(0)
    model = TimeMLP(dim=2, hidden=16, depth=1)
    data = torch.randn(256, 2)
    ema, hist = train_eps_model(model, sched, lambda g: data[torch.randint(0, 256, (32,), generator=g)], steps=20,
                                progress=False)
    assert len(hist.loss) == 20 and not ema.training and ema is not model
    diff = sum((a - b).abs().sum().item() for a, b in zip(ema.state_dict().values(), model.state_dict().values()))
    assert diff > 0  # an average, not the last weights
    plain, _ = train_eps_model(TimeMLP(dim=2, hidden=16, depth=1), sched, lambda g: data[:32], steps=2,
                               ema_decay=None, progress=False)
    assert isinstance(plain, TimeMLP)
    with pytest.raises(ValueError, match="ema_decay"):
        train_eps_model(model, sched, lambda g: data, steps=2, ema_decay=1.5, progress=False)


def test_train_2d_is_seeded():
    a = train_2d("moons", steps=5, progress=False)
    b = train_2d("moons", steps=5, progress=False)
    assert a[2].loss == b[2].loss and a[3].shape == (20_000, 2) and a[1].num_train_timesteps == 100


def test_shipped_digits_unet_loads_and_met_its_targets():
    unet, sched = load_digits_unet()
    assert isinstance(unet, UNet) and sched.num_train_timesteps == 1000
    e = weights.entry(CHECKPOINT)
    assert e.metrics["ddim50_confidence_ratio"] >= 0.95 and e.metrics["ddim50_min_class_share"] >= 0.05
    x = sample(unet, sched, (2, 1, 8, 8), 5, method="ddim", generator=torch.Generator().manual_seed(0))
    assert x.shape == (2, 1, 8, 8) and torch.isfinite(x).all()


@pytest.mark.slow
def test_shipped_digits_unet_generates_recognisable_digits():
    from mmcourse.evaluate import score_digits

    unet, sched = load_digits_unet()
    x = sample(unet, sched, (300, 1, 8, 8), 20, method="ddim", generator=torch.Generator().manual_seed(1))
    s = score_digits(x)
    assert s["confidence_ratio"].value >= 0.95 and s["min_class_share"].value >= 0.05, s
