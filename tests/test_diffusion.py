"""Tests for mmcourse.diffusion: the schedule against diffusers and against the maths.

diffusers is the reference for every number a learner could compare with: the beta tables,
``add_noise``, one DDPM/DDIM step, the inference timesteps and a whole sampling loop. The maths
is the reference for the rest: the Markov chain against its closed form, the Bayes posterior,
and how close x_T gets to N(0, I).
"""

from __future__ import annotations

import math

import pytest
import torch

from mmcourse.diffusion import (
    NoiseSchedule,
    SimpleDenoiseNet,
    TimeMLP,
    UNet,
    ddim_step,
    ddpm_step,
    eps_loss,
    sample,
    timesteps,
)
from mmcourse.train import fit

try:
    from diffusers import DDIMScheduler, DDPMScheduler
except ImportError:  # the maths tests still run; the cross-checks need the test extras
    DDIMScheduler = DDPMScheduler = None
needs_diffusers = pytest.mark.skipif(DDPMScheduler is None, reason="diffusers is not installed")

SCHEDULES = ["linear", "scaled_linear", "squaredcos_cap_v2"]
# The reference steps are compared with rtol as well as atol: at the last steps alpha_bar is
# ~1e-5 (linear) or ~1e-9 (cosine), so pred_original_sample reaches 1e2..1e4 and a float32
# ulp there is far above 1e-5.
TOL = dict(rtol=1e-5, atol=1e-5)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _next(ts: list[int], i: int) -> int:
    return ts[i + 1] if i + 1 < len(ts) else -1


# ---------------------------------------------------------------- tables and add_noise vs diffusers


@needs_diffusers
@pytest.mark.parametrize("T", [50, 1000])
@pytest.mark.parametrize("beta_schedule", SCHEDULES)
def test_tables_match_diffusers(T, beta_schedule):
    ours = NoiseSchedule.make(T, beta_schedule)
    for ref in (DDPMScheduler(num_train_timesteps=T, beta_schedule=beta_schedule),
                DDIMScheduler(num_train_timesteps=T, beta_schedule=beta_schedule)):
        torch.testing.assert_close(ours.betas, ref.betas, rtol=1e-6, atol=1e-8)
        torch.testing.assert_close(ours.alphas, ref.alphas, rtol=0, atol=1e-7)
        # diffusers takes 1 - beta and the cumulative product in float32; with cosine betas
        # capped at 0.999 that subtraction keeps only ~4 digits (see the next test).
        rtol = 1e-4 if beta_schedule == "squaredcos_cap_v2" else 2e-6
        torch.testing.assert_close(ours.alphas_cumprod, ref.alphas_cumprod, rtol=rtol, atol=1e-7)


@needs_diffusers
def test_float64_tables_are_closer_to_exact_than_diffusers():
    """At the capped end of the cosine schedule diffusers' float32 alpha_bar is off by ~1e-5
    relative; ours, computed in float64 and then rounded, is off by one float32 rounding at most."""
    exact = NoiseSchedule.make(1000, "squaredcos_cap_v2", dtype=torch.float64).alphas_cumprod
    ours = NoiseSchedule.make(1000, "squaredcos_cap_v2").alphas_cumprod.double()
    ref = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2").alphas_cumprod.double()
    rel = lambda a: ((a - exact) / exact).abs().max().item()  # noqa: E731
    assert rel(ours) < 1.2e-7  # half an ulp of float32 is 6e-8
    assert rel(ref) > 10 * rel(ours)


@needs_diffusers
@pytest.mark.parametrize("T", [50, 1000])
@pytest.mark.parametrize("beta_schedule", SCHEDULES)
def test_add_noise_matches_diffusers(T, beta_schedule):
    g = _gen(0)
    x0 = torch.rand(6, 3, 4, 4, generator=g) * 2 - 1
    noise = torch.randn(x0.shape, generator=g)
    t = torch.tensor([0, 1, T // 3, T // 2, T - 2, T - 1])
    ref = DDPMScheduler(num_train_timesteps=T, beta_schedule=beta_schedule).add_noise(x0, noise, t)
    torch.testing.assert_close(NoiseSchedule.make(T, beta_schedule).add_noise(x0, noise, t), ref, rtol=0, atol=1e-5)


# ---------------------------------------------------------------- timesteps and steps vs diffusers


@needs_diffusers
@pytest.mark.parametrize("T", [50, 1000])
@pytest.mark.parametrize("N", [1, 7, 10, 50])
@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
def test_timesteps_match_diffusers(T, N, spacing):
    ref = DDPMScheduler(num_train_timesteps=T, timestep_spacing=spacing)
    ref.set_timesteps(N)
    ours = timesteps(NoiseSchedule.make(T), N, spacing)
    assert ours.tolist() == ref.timesteps.tolist()
    if spacing != "linspace":  # DDIM does not offer linspace
        ref = DDIMScheduler(num_train_timesteps=T, timestep_spacing=spacing)
        ref.set_timesteps(N)
        assert ours.tolist() == ref.timesteps.tolist()


def test_leading_spacing_never_starts_at_pure_noise():
    ts = timesteps(NoiseSchedule.make(1000), 10).tolist()
    assert ts == [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]


def _ddpm_ref(T, beta_schedule, variance_type, clip_sample=False):
    ref = DDPMScheduler(num_train_timesteps=T, beta_schedule=beta_schedule, variance_type=variance_type,
                        clip_sample=clip_sample)
    # Same float32 betas on both sides, so what is compared is the step arithmetic alone
    # (the table precision is the subject of test_tables_match_diffusers).
    return ref, NoiseSchedule.from_betas(ref.betas)


@needs_diffusers
@pytest.mark.parametrize("T", [50, 1000])
@pytest.mark.parametrize("beta_schedule", ["linear", "squaredcos_cap_v2"])
@pytest.mark.parametrize("variance_type", ["fixed_small", "fixed_large"])
def test_ddpm_step_full_chain_matches_diffusers(T, beta_schedule, variance_type):
    ref, ours = _ddpm_ref(T, beta_schedule, variance_type)
    g = _gen(1)
    x, eps = torch.randn(2, 3, 5, 5, generator=g), torch.randn(2, 3, 5, 5, generator=g)
    for t in [0, 1, T // 2, T - 1]:  # before set_timesteps, diffusers steps to t - 1
        a = ref.step(eps, t, x, generator=_gen(t))
        b = ddpm_step(ours, eps, t, x, generator=_gen(t), variance_type=variance_type)
        torch.testing.assert_close(b.prev_sample, a.prev_sample, **TOL)
        torch.testing.assert_close(b.pred_original_sample, a.pred_original_sample, **TOL)
    # Guard against a test that passes because noise is never added: the two variances differ.
    small = ddpm_step(ours, eps, T // 2, x, _gen(0), "fixed_small").prev_sample
    large = ddpm_step(ours, eps, T // 2, x, _gen(0), "fixed_large").prev_sample
    assert (small - large).abs().max() > 1e-4


@needs_diffusers
@pytest.mark.parametrize("T", [50, 1000])
@pytest.mark.parametrize("beta_schedule", ["linear", "squaredcos_cap_v2"])
@pytest.mark.parametrize("variance_type", ["fixed_small", "fixed_large"])
def test_ddpm_step_strided_matches_diffusers(T, beta_schedule, variance_type):
    ref, ours = _ddpm_ref(T, beta_schedule, variance_type)
    ref.set_timesteps(10)
    ts = timesteps(ours, 10).tolist()
    g = _gen(2)
    x, eps = torch.randn(2, 3, 5, 5, generator=g), torch.randn(2, 3, 5, 5, generator=g)
    for i, t in enumerate(ts):
        assert ref.previous_timestep(t) == _next(ts, i)
        a = ref.step(eps, t, x, generator=_gen(i))
        b = ddpm_step(ours, eps, t, x, generator=_gen(i), variance_type=variance_type, prev_t=_next(ts, i))
        torch.testing.assert_close(b.prev_sample, a.prev_sample, **TOL)
        torch.testing.assert_close(b.pred_original_sample, a.pred_original_sample, **TOL)


@needs_diffusers
@pytest.mark.parametrize("T", [50, 1000])
@pytest.mark.parametrize("beta_schedule", ["linear", "squaredcos_cap_v2"])
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_step_matches_diffusers(T, beta_schedule, eta):
    ref = DDIMScheduler(num_train_timesteps=T, beta_schedule=beta_schedule, clip_sample=False)
    ours = NoiseSchedule.from_betas(ref.betas)
    ref.set_timesteps(10)
    ts = timesteps(ours, 10).tolist()
    g = _gen(3)
    x, eps = torch.randn(2, 3, 5, 5, generator=g), torch.randn(2, 3, 5, 5, generator=g)
    for i, t in enumerate(ts):
        a = ref.step(eps, t, x, eta=eta, generator=_gen(i))
        b = ddim_step(ours, eps, t, _next(ts, i), x, eta=eta, generator=_gen(i))
        torch.testing.assert_close(b.prev_sample, a.prev_sample, **TOL)
        torch.testing.assert_close(b.pred_original_sample, a.pred_original_sample, **TOL)


@needs_diffusers
def test_clip_sample_matches_diffusers():
    T = 50
    ddpm, ours = _ddpm_ref(T, "linear", "fixed_small", clip_sample=True)
    ddim = DDIMScheduler(num_train_timesteps=T, clip_sample=True)
    ddim.set_timesteps(10)
    x, eps = torch.randn(4, 8, generator=_gen(4)) * 3, torch.randn(4, 8, generator=_gen(5))
    a = ddpm.step(eps, 30, x, generator=_gen(0))
    b = ddpm_step(ours, eps, 30, x, generator=_gen(0), clip_sample=True)
    assert b.pred_original_sample.abs().max() == 1.0  # the clamp was active
    torch.testing.assert_close(b.prev_sample, a.prev_sample, **TOL)
    a = ddim.step(eps, 30, x, eta=1.0, generator=_gen(0))
    b = ddim_step(ours, eps, 30, 25, x, eta=1.0, generator=_gen(0), clip_sample=True)
    torch.testing.assert_close(b.prev_sample, a.prev_sample, **TOL)


def test_ddim_rederive_eps_keeps_x_t_consistent_with_the_clamped_x0():
    ours = NoiseSchedule.make(50, "linear")
    x, eps = torch.randn(4, 8, generator=_gen(4)) * 3, torch.randn(4, 8, generator=_gen(5))
    a_t = float(ours.alphas_cumprod[30])
    b = ddim_step(ours, eps, 30, 25, x, clip_sample=True, clip_sample_range=2.0, rederive_eps=True)
    assert b.pred_original_sample.abs().max() == 2.0
    eps2 = (x - a_t**0.5 * b.pred_original_sample) / (1 - a_t) ** 0.5
    plain = ddim_step(ours, eps2, 30, 25, x)   # the unclamped step on the re-derived eps lands in the same place
    torch.testing.assert_close(b.prev_sample, plain.prev_sample, atol=1e-5, rtol=0)
    assert not torch.allclose(b.prev_sample, ddim_step(ours, eps, 30, 25, x, clip_sample=True,
                                                       clip_sample_range=2.0).prev_sample)
    # with a range the clamp never reaches, all three steps agree
    wide = [ddim_step(ours, eps, 30, 25, x, clip_sample=True, clip_sample_range=1e6, rederive_eps=r).prev_sample
            for r in (False, True)]
    torch.testing.assert_close(wide[0], wide[1], atol=1e-5, rtol=0)
    torch.testing.assert_close(wide[0], ddim_step(ours, eps, 30, 25, x).prev_sample, atol=1e-5, rtol=0)


@needs_diffusers
def test_clip_sample_range_matches_diffusers():
    T = 50
    ddpm = DDPMScheduler(num_train_timesteps=T, clip_sample=True, clip_sample_range=2.5)
    ours = NoiseSchedule.make(T, "linear")
    ddim = DDIMScheduler(num_train_timesteps=T, clip_sample=True, clip_sample_range=2.5)
    ddim.set_timesteps(10)
    x, eps = torch.randn(4, 8, generator=_gen(4)) * 3, torch.randn(4, 8, generator=_gen(5))
    a = ddpm.step(eps, 30, x, generator=_gen(0))
    b = ddpm_step(ours, eps, 30, x, generator=_gen(0), clip_sample=True, clip_sample_range=2.5)
    assert b.pred_original_sample.abs().max() == 2.5  # the clamp was active, at the range
    torch.testing.assert_close(b.prev_sample, a.prev_sample, **TOL)
    a = ddim.step(eps, 30, x, eta=0.0)
    b = ddim_step(ours, eps, 30, 25, x, clip_sample=True, clip_sample_range=2.5)
    assert b.pred_original_sample.abs().max() == 2.5
    torch.testing.assert_close(b.prev_sample, a.prev_sample, **TOL)


@needs_diffusers
@pytest.mark.parametrize("T", [50, 1000])
@pytest.mark.parametrize("method,eta", [("ddpm", 0.0), ("ddim", 0.0), ("ddim", 1.0)])
def test_sample_loop_matches_diffusers_loop(T, method, eta):
    """Same model, same seed: our loop and a hand-written diffusers loop give the same samples."""
    N, shape = 10, (8, 2)
    torch.manual_seed(0)
    model = TimeMLP(dim=2, hidden=32, depth=1).eval()
    ref = (DDPMScheduler if method == "ddpm" else DDIMScheduler)(num_train_timesteps=T, clip_sample=False)
    ref.set_timesteps(N)
    g = _gen(7)
    x = torch.randn(shape, generator=g)
    with torch.no_grad():
        for t in ref.timesteps:
            eps = model(x, torch.full((shape[0],), int(t)))
            kw = dict(eta=eta) if method == "ddim" else {}
            x = ref.step(eps, t, x, generator=g, **kw).prev_sample
    ours = sample(model, NoiseSchedule.make(T), shape, N, method=method, eta=eta, generator=_gen(7))
    torch.testing.assert_close(ours, x, **TOL)


# ---------------------------------------------------------------- the forward process


def test_q_step_chain_matches_add_noise_in_distribution():
    """Applying q_step for steps 0..k gives the law of add_noise(., ., k) (same mean and variance).

    Large betas make neighbouring levels clearly different, so an off-by-one is caught.
    """
    sched = NoiseSchedule.make(10, beta_start=0.05, beta_end=0.3)
    n, c = 20_000, 2.0
    g = _gen(8)
    x0 = torch.full((n, 1), c)
    x = x0
    for k in range(10):
        x = sched.q_step(x, k, torch.randn(x.shape, generator=g))
        if k not in (0, 4, 9):
            continue
        abar = sched.alphas_cumprod[k].item()
        closed = sched.add_noise(x0, torch.randn(x.shape, generator=g), k)
        for z in (x, closed):
            mean_se, var_se = math.sqrt((1 - abar) / n), (1 - abar) * math.sqrt(2 / n)
            assert abs(z.mean().item() - math.sqrt(abar) * c) < 5 * mean_se, (k, z.mean().item())
            assert abs(z.var().item() - (1 - abar)) < 5 * var_se, (k, z.var().item())
        # The nearest wrong level is many standard errors away.
        wrong = sched.alphas_cumprod[k - 1].item() if k else 1.0
        assert abs(math.sqrt(wrong) * c - math.sqrt(abar) * c) > 20 * mean_se


def test_q_step_chain_without_noise_is_sqrt_alpha_bar():
    sched = NoiseSchedule.make(1000, dtype=torch.float64)
    x0 = torch.tensor([[1.0], [-3.0]], dtype=torch.float64)
    x = x0
    for k in range(1000):
        x = sched.q_step(x, k, torch.zeros_like(x))
        if k in (0, 10, 999):
            torch.testing.assert_close(x, sched.add_noise(x0, torch.zeros_like(x0), k), rtol=1e-12, atol=0)


def _x_T_moments(T: int, low: float, high: float) -> tuple[float, float]:
    """Analytic mean and variance of x at the last level when x0 ~ U[low, high]."""
    abar = NoiseSchedule.make(T, dtype=torch.float64).alphas_cumprod[-1].item()
    m, v = (low + high) / 2, (high - low) ** 2 / 12
    return math.sqrt(abar) * m, abar * v + 1 - abar


@pytest.mark.parametrize("low,high", [(-1.0, 1.0), (0.0, 1.0)])
def test_x_T_is_standard_normal_only_for_long_chains(low, high):
    """With the notes' linear betas (1e-4..0.02), T=1000 ends within 0.01 of N(0, 1); T=100 doesn't.

    Numbers: T=1000 alpha_bar_T = 4.0e-5. U[-1,1]: var 0.99997; U[0,1]: mean 0.0032.
    T=100 alpha_bar_T = 0.364. U[-1,1]: var 0.757 (gap 0.24); U[0,1]: mean 0.30 (the notes'
    own example: T=100 with data from np.random.rand).
    """
    n = 200_000
    for T, close in ((1000, True), (100, False)):
        mean, var = _x_T_moments(T, low, high)
        gap = max(abs(mean), abs(var - 1))
        assert (gap < 0.01) == close, (T, mean, var)
        sched = NoiseSchedule.make(T)
        g = _gen(T)
        x0 = torch.rand(n, 1, generator=g) * (high - low) + low
        xT = sched.add_noise(x0, torch.randn(n, 1, generator=g), T - 1)
        assert abs(xT.mean().item() - mean) < 0.01 and abs(xT.var().item() - var) < 0.01
        empirical_gap = max(abs(xT.mean().item()), abs(xT.var().item() - 1))
        assert (empirical_gap < 0.01) == close, (T, xT.mean().item(), xT.var().item())
    assert _x_T_moments(100, -1, 1)[1] < 0.8  # not a near miss


def test_posterior_matches_bayes_rule():
    """q(x_{t-1} | x_t, x_0) ∝ q(x_t | x_{t-1}) q(x_{t-1} | x_0): a product of two Gaussians in x_{t-1}."""
    T = 1000
    betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float64).tolist()
    g = _gen(9)
    x0 = torch.randn(3, 4, generator=g, dtype=torch.float64)
    xt = torch.randn(3, 4, generator=g, dtype=torch.float64)
    s64, s32 = NoiseSchedule.make(T, dtype=torch.float64), NoiseSchedule.make(T)
    for t in (1, 2, 500, 999):
        abar_prev = math.prod(1 - b for b in betas[:t])  # level t-1 = steps 0..t-1
        beta = betas[t]
        # q(x_{t-1} | x_0) = N(sqrt(abar_prev) x0, 1 - abar_prev);  as a function of x_{t-1},
        # q(x_t | x_{t-1}) ∝ N(x_t / sqrt(1 - beta), beta / (1 - beta)). Precisions add.
        p1, p2 = 1 / (1 - abar_prev), (1 - beta) / beta
        var = 1 / (p1 + p2)
        mean = var * (p1 * math.sqrt(abar_prev) * x0 + p2 * xt / math.sqrt(1 - beta))
        m, v = s64.posterior_mean_variance(x0, xt, t)
        torch.testing.assert_close(m, mean, rtol=1e-10, atol=1e-12)
        assert v.item() == pytest.approx(var, rel=1e-10)
        m, v = s32.posterior_mean_variance(x0.float(), xt.float(), t)
        torch.testing.assert_close(m, mean.float(), rtol=1e-5, atol=1e-5)
    # t = 0: the previous level is the data itself.
    m, v = s64.posterior_mean_variance(x0, xt, 0)
    torch.testing.assert_close(m, x0)
    assert v.item() == 0.0
    # A batch of t broadcasts to (B, 1).
    m, v = s64.posterior_mean_variance(x0, xt, torch.tensor([1, 2, 999]))
    assert m.shape == (3, 4) and v.shape == (3, 1)


def test_ddpm_step_is_posterior_with_predicted_x0():
    """Full-chain fixed_small DDPM = mean of q(x_{t-1}|x_t, x0_hat) + sqrt(posterior variance) z."""
    sched = NoiseSchedule.make(100)
    x, eps = torch.randn(4, 3, generator=_gen(10)), torch.randn(4, 3, generator=_gen(11))
    t = 40
    out = ddpm_step(sched, eps, t, x, generator=_gen(12))
    x0 = sched.predict_x0_from_eps(x, t, eps)
    mean, var = sched.posterior_mean_variance(x0, x, t)
    z = torch.randn(x.shape, generator=_gen(12))
    torch.testing.assert_close(out.pred_original_sample, x0)
    torch.testing.assert_close(out.prev_sample, mean + var.sqrt() * z, **TOL)


def test_predict_x0_inverts_add_noise_and_snr():
    sched = NoiseSchedule.make(1000)
    x0, eps = torch.rand(5, 2, generator=_gen(13)), torch.randn(5, 2, generator=_gen(14))
    t = torch.tensor([0, 10, 100, 500, 900])
    torch.testing.assert_close(sched.predict_x0_from_eps(sched.add_noise(x0, eps, t), t, eps), x0, rtol=0, atol=1e-4)
    snr = sched.snr()
    assert snr.shape == (1000,) and (snr[1:] < snr[:-1]).all()
    torch.testing.assert_close(snr, sched.alphas_cumprod / (1 - sched.alphas_cumprod))
    assert sched.to(dtype=torch.float64).alphas_cumprod.dtype == torch.float64


# ---------------------------------------------------------------- bad inputs


SCHED = NoiseSchedule.make(50)
X = torch.zeros(4, 2)


@pytest.mark.parametrize(
    "call,pattern",
    [
        (lambda: SCHED.add_noise(X, X, 50), r"t must lie in \[0, 50\).*50"),
        (lambda: SCHED.add_noise(X, X, -1), r"t must lie in \[0, 50\).*-1"),
        (lambda: SCHED.add_noise(X, X, torch.tensor([0, 1, 2, 60])), r"t must lie in \[0, 50\).*60"),
        (lambda: SCHED.add_noise(X, X, torch.tensor([0, 1, 2])), r"t has 3 entries.*batch size 4"),
        (lambda: SCHED.q_step(X, torch.tensor([0, 1]), X), r"t has 2 entries.*batch size 4"),
        (lambda: SCHED.posterior_mean_variance(X, X, 50), r"t must lie in \[0, 50\)"),
        (lambda: SCHED.add_noise(X, X, torch.tensor([0.5, 1, 2, 3])), r"t must hold integer"),
        (lambda: NoiseSchedule.make(10, "cosine"), r"beta_schedule must be one of .*linear.*scaled_linear.*squaredcos_cap_v2.*'cosine'"),
        (lambda: NoiseSchedule.make(0), r"num_train_timesteps must be a positive int, got 0"),
        (lambda: NoiseSchedule.make(-5), r"num_train_timesteps"),
        (lambda: ddpm_step(SCHED, X, 10, X, variance_type="learned"), r"variance_type must be one of .*fixed_small.*fixed_large.*'learned'"),
        (lambda: ddpm_step(SCHED, X, 50, X), r"t must lie in \[0, 50\)"),
        (lambda: ddpm_step(SCHED, X, 10, X, prev_t=10), r"prev_t must lie in \[-1, t\)"),
        (lambda: ddim_step(SCHED, X, 10, -2, X), r"prev_t must lie in \[-1, t\)"),
        (lambda: timesteps(SCHED, 51), r"num_inference_steps must be an int in \[1, 50\]"),
        (lambda: timesteps(SCHED, 10, "uniform"), r"spacing must be one of"),
        (lambda: sample(TimeMLP(), SCHED, (2, 2), method="euler"), r"method must be one of .*ddpm.*ddim.*'euler'"),
        (lambda: sample(TimeMLP(), SCHED, (2, 2), variance_type="big"), r"variance_type must be one of"),
        (lambda: TimeMLP()(X, torch.zeros(3, dtype=torch.long)), r"t must have shape \(B,\) = \(4,\)"),
        (lambda: UNet(image_size=9, channel_mults=(1, 2)), r"image_size \(9\) must be divisible"),
    ],
)
def test_bad_inputs_raise_value_error_naming_the_argument(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


# ---------------------------------------------------------------- models, losses, sampling


def test_simple_denoise_net_is_the_notes_network():
    net = SimpleDenoiseNet()
    layers = list(net.net)
    assert [type(m).__name__ for m in layers] == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert [(m.in_features, m.out_features) for m in layers[::2]] == [(2, 128), (128, 128), (128, 1)]
    x, t = torch.randn(5, 1), torch.randint(0, 100, (5,))
    out = net(x, t[:, None].float())  # the notes' calling convention
    assert out.shape == (5, 1)
    torch.testing.assert_close(net(x, t), out)  # the samplers' convention gives the same
    h = torch.cat([x, t[:, None].float()], dim=1)  # the raw step is appended after x
    for layer in layers:
        h = layer(h)
    torch.testing.assert_close(out, h)
    assert SimpleDenoiseNet(in_features=3, out_features=3)(torch.randn(2, 3), torch.ones(2, 1)).shape == (2, 3)


def test_eps_loss_t_column_feeds_the_notes_model_the_same_batch():
    sched, net = NoiseSchedule.make(100), SimpleDenoiseNet()
    x0 = torch.rand(64, 1)
    a = eps_loss(net, sched, x0, generator=_gen(0), t_column=True)
    b = eps_loss(net, sched, x0, generator=_gen(0))
    assert a.ndim == 0 and torch.equal(a, b)
    zero = eps_loss(lambda x, t: torch.zeros_like(x), sched, torch.rand(4096, 1), generator=_gen(1))
    assert abs(zero.item() - 1.0) < 0.06  # predicting zero scores the variance of the noise


def test_model_output_shapes_and_sizes():
    t = torch.randint(0, 1000, (3,))
    assert TimeMLP(dim=2)(torch.randn(3, 2), t).shape == (3, 2)
    assert TimeMLP(dim=5, depth=1)(torch.randn(3, 5), t).shape == (3, 5)
    digits = UNet(in_channels=1, base=32, channel_mults=(1, 2), image_size=8)
    assert digits(torch.randn(3, 1, 8, 8), t).shape == (3, 1, 8, 8)
    n = sum(p.numel() for p in digits.parameters())
    assert 300_000 <= n <= 1_000_000, n
    shapes = UNet(in_channels=3, base=32, channel_mults=(1, 2, 2), image_size=32)
    assert shapes(torch.randn(2, 3, 32, 32), t[:2]).shape == (2, 3, 32, 32)
    plain = UNet(attention=False)
    assert plain(torch.randn(3, 1, 8, 8), t).shape == (3, 1, 8, 8)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, 8, 8\)"):
        digits(torch.randn(3, 1, 16, 16), t)


def test_unet_uses_the_time_step():
    torch.manual_seed(0)
    net, x = UNet(), torch.randn(2, 1, 8, 8)
    a, b = net(x, torch.tensor([0, 0])), net(x, torch.tensor([500, 500]))
    assert (a - b).abs().mean() > 1e-3


@pytest.mark.parametrize("method", ["ddpm", "ddim"])
def test_sample_is_deterministic_for_a_seed_and_returns_its_trajectory(method):
    torch.manual_seed(0)
    model, sched = TimeMLP(dim=2, hidden=32, depth=1), NoiseSchedule.make(50)
    kw = dict(method=method, eta=1.0, num_inference_steps=10)
    a = sample(model, sched, (16, 2), generator=_gen(3), **kw)
    b, traj = sample(model, sched, (16, 2), generator=_gen(3), return_trajectory=True, **kw)
    c = sample(model, sched, (16, 2), generator=_gen(4), **kw)
    assert a.shape == (16, 2) and torch.equal(a, b) and not torch.allclose(a, c)
    assert traj.shape == (11, 16, 2)
    assert torch.equal(traj[0], torch.randn(16, 2, generator=_gen(3)))  # x_T is the first draw
    assert torch.equal(traj[-1], a)
    full = sample(model, sched, (4, 2), generator=_gen(3), return_trajectory=True)[1]
    assert full.shape == (51, 4, 2)  # default: every training step


def test_time_mlp_learns_a_toy_distribution():
    """A few hundred steps of eps_loss on a 2-D mixture bring the loss well below 1.0."""
    sched = NoiseSchedule.make(100)
    centres = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [1.0, -1.0]])

    def data(g: torch.Generator, n: int = 256) -> torch.Tensor:
        return centres[torch.randint(0, 3, (n,), generator=g)] + 0.1 * torch.randn(n, 2, generator=g)

    torch.manual_seed(0)
    model = TimeMLP(dim=2, hidden=64, depth=2)
    held_out = data(_gen(123), 4096)

    def score() -> float:  # the loss on a fixed batch with fixed t and noise
        with torch.no_grad():
            return eps_loss(model, sched, held_out, generator=_gen(456)).item()

    before = score()
    hist = fit(model, lambda m, g: eps_loss(m, sched, data(g), generator=g), steps=300, lr=3e-3, seed=0, progress=False)
    after = score()
    assert before > 0.9 and after < 0.6 and hist.final(50) < 0.6, (before, after, hist.final(50))


# ---------------------------------------------------------------- Min-SNR weights


@needs_diffusers
@pytest.mark.parametrize("beta_schedule", SCHEDULES)
def test_compute_snr_matches_diffusers(beta_schedule):
    from diffusers.training_utils import compute_snr as theirs

    from mmcourse.diffusion import compute_snr

    s = NoiseSchedule.make(1000, beta_schedule)
    ref = DDPMScheduler(num_train_timesteps=1000, beta_schedule=beta_schedule)
    t = torch.tensor([0, 1, 10, 250, 500, 900, 999])
    # At t = 0, 1 the SNR is in the thousands and 1 - alpha_bar is tiny: diffusers' float32 table
    # differs from the course's float64 one by ~3e-4 relative there.
    torch.testing.assert_close(compute_snr(s, t), theirs(ref, t), rtol=1e-3, atol=0)


def test_min_snr_weights_closed_form():
    from mmcourse.diffusion import compute_snr, min_snr_weights

    s = NoiseSchedule.make(1000, "squaredcos_cap_v2")
    t = torch.arange(1000)
    snr = compute_snr(s, t)
    assert bool((snr[1:] < snr[:-1]).all())                             # noisier, lower SNR
    w = min_snr_weights(s, t, 5.0)
    assert bool(((w > 0) & (w <= 1)).all())
    assert bool((w[snr <= 5] == 1).all()) and bool((snr > 5).any())     # only the clean end is damped
    torch.testing.assert_close(w[snr > 5], 5.0 / snr[snr > 5])
    assert bool((min_snr_weights(s, t, 1e12) == 1).all())               # gamma -> infinity: plain loss
    for bad in (0, -1.0, True, "5"):
        with pytest.raises(ValueError, match="snr_gamma must be a positive number"):
            min_snr_weights(s, t, bad)


def _gaussian_eps(schedule: NoiseSchedule, std: float = 0.5):
    """The exact noise prediction E[eps | x_t] for data x_0 ~ N(0, std^2 I): a real denoiser in
    closed form, so the samplers below move samples the way a trained model would."""
    a = schedule.alphas_cumprod.float()

    def eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ab = a[t].view(-1, *[1] * (x.ndim - 1))
        return (1 - ab) ** 0.5 * x / (ab * std**2 + 1 - ab)

    return eps


def _diffusers_ddim_loop(ref, N: int, x: torch.Tensor, eps) -> torch.Tensor:
    ref.set_timesteps(N)
    for t in ref.timesteps.tolist():
        x = ref.step(eps(x, torch.full((len(x),), t)), t, x, eta=0.0).prev_sample
    return x


@needs_diffusers
@pytest.mark.parametrize("spacing", ["leading", "trailing"])
def test_ddim_sampling_loop_against_diffusers_for_both_spacings(spacing):
    """sample(method="ddim") steps to the next visited timestep; diffusers' DDIMScheduler to
    t - T // N. Leading spacing: the same steps, the same samples. Trailing spacing with N not
    dividing T (1000 / 37): the steps differ where the rounded grid skips (513 -> 485 against
    486); ddim_step with diffusers' prev_t reproduces diffusers exactly, and sample() differs from
    it by a small but real amount (5e-4 here, for x_0 ~ N(0, 0.25 I))."""
    T, N, shape = 1000, 37, (4, 2, 3, 3)
    ref = DDIMScheduler(num_train_timesteps=T, beta_schedule="linear", clip_sample=False, timestep_spacing=spacing)
    ours = NoiseSchedule.from_betas(ref.betas)
    ts = timesteps(ours, N, spacing).tolist()
    ref.set_timesteps(N)
    assert ts == ref.timesteps.tolist()
    x_T = torch.randn(shape, generator=_gen(7))
    eps = _gaussian_eps(ours)
    theirs = _diffusers_ddim_loop(ref, N, x_T.clone(), eps)
    mine = sample(eps, ours, shape, N, method="ddim", generator=_gen(7), spacing=spacing)

    # diffusers' choice of the earlier step, through ddim_step: the same samples either way.
    x = x_T.clone()
    for t in ts:
        x = ddim_step(ours, eps(x, torch.full((shape[0],), t)), t, max(t - T // N, -1), x).prev_sample
    torch.testing.assert_close(x, theirs, **TOL)

    skips = [(t, n) for t, n in zip(ts, [*ts[1:], -1]) if n != max(t - T // N, -1)]
    gap = (mine - theirs).abs().max().item()
    if spacing == "leading":
        assert skips == []
        torch.testing.assert_close(mine, theirs, **TOL)
    else:
        assert skips == [(513, 485)]
        print(f"trailing, T = {T}, N = {N}: largest difference {gap:.2e}")
        assert 1e-5 < gap < 1e-2, gap  # one step of 37 lands one timestep off


@pytest.mark.parametrize("dim", [1, 2])
def test_eps_loss_floor_matches_the_closed_form_for_gaussian_data(dim):
    """For x0 ~ N(0, s^2 I), E[eps | x_t] = sqrt(1 - a) x_t / (a s^2 + 1 - a), and the residual
    variance per coordinate is a s^2 / (a s^2 + 1 - a): the floor is its mean over t. A large
    sample of the Gaussian stands in for the distribution."""
    from mmcourse.diffusion import eps_loss_floor

    schedule, std = NoiseSchedule.make(100, "squaredcos_cap_v2"), 0.5
    g = _gen(11)
    data = torch.randn(10_000, dim, generator=g) * std
    est = eps_loss_floor(data, schedule, n=4000, generator=g)
    a = schedule.alphas_cumprod.double()
    exact = (a * std**2 / (a * std**2 + 1 - a)).mean().item()
    assert abs(est.value - exact) < 3 * est.se + 0.005, (est, exact)
    assert est.n == 4000 and 0 < est.se < 0.01


def test_eps_loss_floor_is_what_the_exact_posterior_mean_scores_and_rejects_bad_input():
    """Two data points far apart: the posterior names the right one, so the floor is the loss
    of the exact denoiser, far below 1 (predicting zero) yet above 0 (at high noise the two
    points are confused)."""
    from mmcourse.diffusion import eps_loss_floor

    schedule = NoiseSchedule.make(50, "linear")
    data = torch.tensor([[-3.0, 0.0], [3.0, 0.0]])
    est = eps_loss_floor(data, schedule, n=4000, generator=_gen(12))
    assert 0.0 < est.value < 0.5
    # one point: no uncertainty about x0, so E[eps | x_t] = eps exactly and the floor is 0
    assert eps_loss_floor(data[:1], schedule, n=100, generator=_gen(13)).value < 1e-12
    with pytest.raises(ValueError, match="data"):
        eps_loss_floor(torch.zeros(5), schedule)
    with pytest.raises(ValueError, match="n must"):
        eps_loss_floor(data, schedule, n=1)
