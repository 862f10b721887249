"""The diffusion exercise checkers accept the reference and reject plausible mistakes."""

import pytest
import torch

from mmcourse.checks import check_add_noise, check_ddpm_step, check_diffusion_loss
from mmcourse.checks.diffusion import (
    ToyDenoiser,
    add_noise_reference,
    ddpm_step_reference,
    diffusion_loss_reference,
)
from mmcourse.diffusion import NoiseSchedule, ddpm_step, eps_loss


def _bcast(a, x):
    return a.reshape(-1, *([1] * (x.ndim - 1)))


# ------------------------------------------------------------------ the references agree with the library


def test_add_noise_reference_is_the_library_add_noise():
    s = NoiseSchedule.make(1000)
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(4, 3, 5, 5, generator=g), torch.randn(4, 3, 5, 5, generator=g)
    t = torch.tensor([0, 10, 500, 999])
    torch.testing.assert_close(add_noise_reference(x0, noise, t, s.alphas_cumprod), s.add_noise(x0, noise, t))


def test_loss_reference_is_eps_loss_with_the_same_draws():
    s = NoiseSchedule.make(100)
    x0 = torch.randn(16, 2, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(2)
    t = torch.randint(0, 100, (16,), generator=g)  # eps_loss draws t first, then the noise
    noise = torch.randn(x0.shape, generator=g)
    want = eps_loss(ToyDenoiser(), s, x0, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(diffusion_loss_reference(ToyDenoiser(), x0, t, noise, s.alphas_cumprod), want)


@pytest.mark.parametrize("t", [0, 1, 37, 99])
def test_ddpm_step_reference_is_the_library_step(t):
    s = NoiseSchedule.make(100, "squaredcos_cap_v2")
    g = torch.Generator().manual_seed(3)
    x_t, eps = torch.randn(5, 1, 4, 4, generator=g), torch.randn(5, 1, 4, 4, generator=g)
    want = ddpm_step(s, eps, t, x_t, generator=torch.Generator().manual_seed(4)).prev_sample
    z = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(ddpm_step_reference(x_t, eps, t, s.betas, s.alphas_cumprod, z), want, atol=1e-6, rtol=1e-5)


# ------------------------------------------------------------------ accept the reference


@pytest.mark.parametrize("checker, ref", [
    (check_add_noise, add_noise_reference),
    (check_diffusion_loss, diffusion_loss_reference),
    (check_ddpm_step, ddpm_step_reference),
])
def test_checkers_accept_the_reference(checker, ref, capsys):
    assert checker(ref)
    assert "✓" in capsys.readouterr().out


# ------------------------------------------------------------------ reject plausible mistakes


def add_noise_no_sqrt(x0, noise, t, ac):
    a = _bcast(ac[t], x0)
    return a * x0 + (1 - a) * noise


def add_noise_off_by_one(x0, noise, t, ac):
    a = _bcast(ac[(t - 1).clamp(min=0)], x0)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def add_noise_alpha_not_alpha_bar(x0, noise, t, ac):
    # Recover alpha_t from the table: alpha_t = alpha_bar_t / alpha_bar_(t-1).
    prev = torch.cat([torch.ones(1), ac[:-1]])
    a = _bcast((ac / prev)[t], x0)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def add_noise_no_broadcast(x0, noise, t, ac):
    a = ac[t][:, None]  # (B, 1): right for vectors, wrong for images
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


@pytest.mark.parametrize("wrong", [add_noise_no_sqrt, add_noise_off_by_one, add_noise_alpha_not_alpha_bar,
                                   add_noise_no_broadcast])
def test_check_add_noise_rejects(wrong, capsys):
    assert not check_add_noise(wrong)
    assert "✗" in capsys.readouterr().out


def loss_predicts_x0(model, x0, t, noise, ac):
    a = _bcast(ac[t], x0)
    return ((x0 - model(a.sqrt() * x0 + (1 - a).sqrt() * noise, t)) ** 2).mean()


def loss_on_clean_input(model, x0, t, noise, ac):
    return ((noise - model(x0, t)) ** 2).mean()


def loss_sum(model, x0, t, noise, ac):
    a = _bcast(ac[t], x0)
    return ((noise - model(a.sqrt() * x0 + (1 - a).sqrt() * noise, t)) ** 2).sum()


def loss_no_sqrt(model, x0, t, noise, ac):
    a = _bcast(ac[t], x0)
    return ((noise - model(a * x0 + (1 - a) * noise, t)) ** 2).mean()


@pytest.mark.parametrize("wrong", [loss_predicts_x0, loss_on_clean_input, loss_sum, loss_no_sqrt])
def test_check_diffusion_loss_rejects(wrong, capsys):
    assert not check_diffusion_loss(wrong)
    assert "✗" in capsys.readouterr().out


def step_with_beta(x_t, eps, t, betas, ac, z):  # sigma^2 = beta ("fixed_large"), not beta tilde
    mean = (x_t - betas[t] / (1 - ac[t]).sqrt() * eps) / (1 - betas[t]).sqrt()
    return mean if t == 0 else mean + betas[t].sqrt() * z


def step_noise_at_zero(x_t, eps, t, betas, ac, z):
    mean = (x_t - betas[t] / (1 - ac[t]).sqrt() * eps) / (1 - betas[t]).sqrt()
    prev = ac[t - 1] if t > 0 else torch.tensor(1.0)
    return mean + (betas[t] * (1 - prev) / (1 - ac[t])).sqrt() * z + (betas[t].sqrt() * z if t == 0 else 0)


def step_alpha_bar_in_mean(x_t, eps, t, betas, ac, z):
    mean = (x_t - betas[t] / (1 - ac[t]).sqrt() * eps) / ac[t].sqrt()
    return mean if t == 0 else mean + (betas[t] * (1 - ac[t - 1]) / (1 - ac[t])).sqrt() * z


def step_variance_not_std(x_t, eps, t, betas, ac, z):
    mean = (x_t - betas[t] / (1 - ac[t]).sqrt() * eps) / (1 - betas[t]).sqrt()
    return mean if t == 0 else mean + (betas[t] * (1 - ac[t - 1]) / (1 - ac[t])) * z


@pytest.mark.parametrize("wrong", [step_with_beta, step_noise_at_zero, step_alpha_bar_in_mean, step_variance_not_std])
def test_check_ddpm_step_rejects(wrong, capsys):
    assert not check_ddpm_step(wrong)
    assert "✗" in capsys.readouterr().out


def test_not_implemented_propagates(capsys):
    def todo(*args):
        raise NotImplementedError("exercise: add_noise")

    with pytest.raises(NotImplementedError):
        check_add_noise(todo)
    assert "not implemented yet" in capsys.readouterr().out
