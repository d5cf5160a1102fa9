"""GaussianDiffusion: schedules, forward process, loss, DDPM/DDIM samplers, DDIM inversion and
classifier-free guidance, checked against closed-form oracles (the analytic denoisers of
cdae.denoisers are tested in test_denoisers.py and drive the samplers in the CUDA test)."""

import copy
import math

import pytest
import torch

from cdae.denoisers import NULL_LABEL, EmpiricalDenoiser, GaussianDenoiser
from cdae.diffusion import (
    GaussianDiffusion,
    beta_schedule,
    classifier_free_guidance,
    guided_eps_fn,
)

T = 1000


@pytest.fixture(scope="module")
def diffusion() -> GaussianDiffusion:
    return GaussianDiffusion("linear", T)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def abar_of(diffusion: GaussianDiffusion, t: torch.Tensor) -> torch.Tensor:
    """abar_t as (B, 1, 1, 1) float64, read straight from the buffer (t >= 0)."""
    return diffusion.alphas_cumprod.double()[t].view(-1, 1, 1, 1)


def gaussian_oracle(diffusion: GaussianDiffusion, std: float):
    """Exact E[eps | x_t] for data N(0, std² I): sqrt(1 - abar) x_t / (abar std² + 1 - abar)."""

    def eps_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        abar = abar_of(diffusion, t).to(x_t.dtype)
        return (1 - abar).sqrt() * x_t / (abar * std**2 + 1 - abar)

    return eps_fn


def rms(a: torch.Tensor) -> float:
    return a.pow(2).mean().sqrt().item()


# ----------------------------------------------------------------------------------- schedules
def test_linear_schedule_endpoints_and_monotone_abar():
    betas = beta_schedule("linear", T)
    assert betas.dtype == torch.float64 and betas.shape == (T,)
    assert betas[0].item() == pytest.approx(1e-4) and betas[-1].item() == pytest.approx(0.02)
    abar = torch.cumprod(1 - betas, 0)
    assert bool((abar[1:] < abar[:-1]).all()) and 0 < abar[-1] < 1e-4
    # the released code's encoding keeps about 0.006 of the image at the last step
    assert math.sqrt(abar[-1]) == pytest.approx(0.00635, abs=5e-5)


def test_cosine_schedule_matches_closed_form_abar():
    betas = beta_schedule("cosine", T)
    assert float(betas.max()) <= 0.999
    abar = torch.cumprod(1 - betas, 0)
    assert bool((abar[1:] < abar[:-1]).all()) and abar[-1] < 1e-6

    def f(t: float) -> float:
        return math.cos((t / T + 0.008) / 1.008 * math.pi / 2) ** 2

    for t in (0, 250, 500, 900):  # abar_t = f(t + 1) / f(0) with t = 0 the first noisy step
        assert abar[t].item() == pytest.approx(f(t + 1) / f(0), rel=1e-9)


def test_buffers_are_float32_movable_and_not_checkpointed(diffusion):
    assert diffusion.alphas_cumprod.dtype == torch.float32
    assert diffusion.state_dict() == {}
    moved = GaussianDiffusion("cosine", 50).to(torch.float64)
    assert moved.alphas_cumprod.dtype == torch.float64
    assert moved.alphas_cumprod_padded[0] == 1.0  # abar_{-1}: the clean image


# ------------------------------------------------------------------------- forward process, loss
def test_q_sample_statistics_for_constant_image(diffusion):
    x0 = torch.full((20000, 1, 2, 2), 0.7)
    t = torch.tensor([100, 900]).repeat_interleave(10000)
    x_t = diffusion.q_sample(x0, t, generator=gen())
    for group, step in ((slice(0, 10000), 100), (slice(10000, None), 900)):
        abar = diffusion.alphas_cumprod[step].item()
        values = x_t[group]
        assert values.mean().item() == pytest.approx(math.sqrt(abar) * 0.7, abs=0.01)
        assert values.var().item() == pytest.approx(1 - abar, rel=0.03)


def test_q_sample_is_reproducible_with_a_generator(diffusion):
    x0 = torch.rand(3, 1, 4, 4)
    assert torch.equal(
        diffusion.q_sample(x0, 5, generator=gen(1)), diffusion.q_sample(x0, 5, generator=gen(1))
    )


def test_training_loss_is_zero_for_the_oracle_and_the_noise_power_for_zero(diffusion):
    x0 = torch.rand(6, 1, 5, 5, generator=gen(), dtype=torch.float64) * 2 - 1
    t = torch.tensor([0, 1, 10, 500, 998, 999])
    noise = torch.randn(x0.shape, generator=gen(1), dtype=torch.float64)

    def oracle(x_t, t_in):  # recovers the noise from x_t, x0 and t: checks what it is handed
        abar = abar_of(diffusion, t_in)
        return (x_t - abar.sqrt() * x0) / (1 - abar).sqrt()

    loss = diffusion.training_loss(oracle, x0, t, noise)
    assert loss.shape == (6,) and float(loss.max()) < 1e-8
    zero = diffusion.training_loss(lambda x_t, t_in: torch.zeros_like(x_t), x0, t, noise)
    torch.testing.assert_close(zero, noise.pow(2).mean(dim=(1, 2, 3)))
    drawn = diffusion.training_loss(oracle, x0, generator=gen(3))  # t and noise drawn
    assert float(drawn.max()) < 1e-8


def test_predict_x0_inverts_q_sample(diffusion):
    x0 = torch.rand(4, 2, 3, 3, generator=gen(), dtype=torch.float64)
    noise = torch.randn(x0.shape, generator=gen(1), dtype=torch.float64)
    t = torch.tensor([0, 300, 700, T - 1])
    x_t = diffusion.q_sample(x0, t, noise)
    torch.testing.assert_close(diffusion.predict_x0(x_t, t, noise), x0)
    torch.testing.assert_close(diffusion.predict_eps(x_t, t, x0), noise)  # and back
    torch.testing.assert_close(diffusion.alpha_bar(t, x_t), abar_of(diffusion, t))


def test_sample_timesteps_uniform(diffusion):
    t = diffusion.sample_timesteps(50000, generator=gen())
    assert t.dtype == torch.long and int(t.min()) == 0 and int(t.max()) == T - 1
    assert t.double().mean().item() == pytest.approx((T - 1) / 2, rel=0.02)


def test_noise_jump_is_q_sample_at_the_last_step(diffusion):
    x0 = torch.ones(400, 1, 50, 50)
    x_T = diffusion.noise_jump(x0, generator=gen())
    assert torch.equal(x_T, diffusion.q_sample(x0, T - 1, generator=gen()))
    abar = diffusion.alphas_cumprod[-1].item()
    assert x_T.mean().item() == pytest.approx(math.sqrt(abar), abs=3e-3)  # 0.0064, n = 1e6
    assert x_T.var().item() == pytest.approx(1 - abar, rel=0.01)


# ------------------------------------------------------------------------------------ samplers
def test_ddim_timesteps_subsequence(diffusion):
    assert diffusion.ddim_timesteps(T).tolist() == list(range(T - 1, -1, -1))
    assert diffusion.ddim_timesteps(1).tolist() == [T - 1]
    for steps in range(2, T + 1):
        taus = diffusion.ddim_timesteps(steps)
        assert len(taus) == steps and taus[0] == T - 1 and taus[-1] == 0
        assert bool((taus[1:] < taus[:-1]).all()), steps


def test_ddim_step_eta0_deterministic_eta1_equals_ddpm(diffusion):
    x_t = torch.randn(3, 1, 4, 4, generator=gen(), dtype=torch.float64)
    eps = torch.randn(x_t.shape, generator=gen(1), dtype=torch.float64)
    z1, z2 = (torch.randn(x_t.shape, generator=gen(s), dtype=torch.float64) for s in (2, 3))
    t = torch.tensor([50, 400, 999])
    assert torch.equal(
        diffusion.ddim_step(x_t, t, t - 1, eps, 0.0, z1),
        diffusion.ddim_step(x_t, t, t - 1, eps, 0.0, z2),
    )
    torch.testing.assert_close(
        diffusion.ddim_step(x_t, t, t - 1, eps, 1.0, z1),
        diffusion.ddpm_step(x_t, t, eps, z1),
        rtol=0,
        atol=5e-6,  # float32 schedule: 1 - abar_t / abar_{t-1} is beta_t to ~1e-5 relative
    )
    # the last step (to t = -1) returns x0_hat, with or without noise
    last = diffusion.ddim_step(x_t, 0, -1, eps, 1.0, z1)
    torch.testing.assert_close(last, diffusion.predict_x0(x_t, 0, eps))


def test_ddim_follows_the_probability_flow_ode(diffusion):
    """For data N(0, s² I) the ODE keeps x_t / sqrt(abar s² + 1 - abar) constant; DDIM converges."""
    std = 0.5
    x_T = torch.randn(4, 1, 6, 6, generator=gen(), dtype=torch.float64)
    abar_T = diffusion.alphas_cumprod[-1].double()
    exact = x_T * std / (abar_T * std**2 + 1 - abar_T).sqrt()
    errors = [
        rms(diffusion.ddim_sample(gaussian_oracle(diffusion, std), x_T, s) - exact) / rms(exact)
        for s in (10, 100, T)
    ]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 5e-3, errors  # 0.28, 0.028, 0.003


def test_inversion_round_trip_error_decreases_with_steps(diffusion):
    std = 0.5
    oracle = gaussian_oracle(diffusion, std)
    x0 = std * torch.randn(8, 1, 8, 8, generator=gen(), dtype=torch.float64)
    abar_T = diffusion.alphas_cumprod[-1].double()
    exact_T = x0 * (abar_T * std**2 + 1 - abar_T).sqrt() / std
    plain, refined = [], []
    for steps in (10, 50, 250):
        x_T = diffusion.ddim_invert(oracle, x0, steps)
        plain.append(rms(diffusion.ddim_sample(oracle, x_T, steps) - x0))
        x_T_refined = diffusion.ddim_invert(oracle, x0, steps, fixed_point_iters=3)
        refined.append(rms(diffusion.ddim_sample(oracle, x_T_refined, steps) - x0))
    # measured (RMS, data std 0.5): plain 0.15, 0.027, 0.0054; refined 0.010, 1.7e-5, 2.7e-8
    assert plain[0] > plain[1] > plain[2] and plain[2] < 1e-2, plain
    assert refined[0] > refined[1] > refined[2] and refined[2] < 1e-6, refined
    assert rms(x_T - exact_T) / rms(exact_T) < 2e-3  # 250 steps land on the ODE's x_T


def test_inversion_is_exact_when_eps_does_not_depend_on_x(diffusion):
    table = torch.randn(T, 2, 3, 3, generator=gen(), dtype=torch.float64)  # eps depends on t only
    x0 = torch.rand(2, 2, 3, 3, generator=gen(1), dtype=torch.float64)

    def eps_fn(x_t, t):
        return table[t]

    for steps in (1, 7, 50):
        x_T = diffusion.ddim_invert(eps_fn, x0, steps)
        torch.testing.assert_close(diffusion.ddim_sample(eps_fn, x_T, steps), x0, rtol=0, atol=1e-9)


def test_ddpm_with_gaussian_oracle_has_the_data_std(diffusion):
    std = 0.5
    samples = diffusion.ddpm_sample(
        gaussian_oracle(diffusion, std), (64, 1, 16, 16), generator=gen()
    )
    assert samples.std().item() == pytest.approx(std, rel=0.05)
    assert abs(samples.mean().item()) < 0.02


def test_samplers_are_deterministic_with_a_generator(diffusion):
    oracle = gaussian_oracle(diffusion, 0.5)
    x_T = torch.randn(2, 1, 3, 3, generator=gen())
    a = diffusion.ddim_sample(oracle, x_T, 20, eta=0.5, generator=gen(7))
    b = diffusion.ddim_sample(oracle, x_T, 20, eta=0.5, generator=gen(7))
    c = diffusion.ddim_sample(oracle, x_T, 20, eta=0.5, generator=gen(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    trajectory = list(diffusion.ddim_trajectory(oracle, x_T, 20))
    assert [t for t, _ in trajectory] == diffusion.ddim_timesteps(20).tolist()[1:] + [-1]
    assert torch.equal(trajectory[-1][1], diffusion.ddim_sample(oracle, x_T, 20))
    ddpm = list(diffusion.ddpm_trajectory(oracle, x_T, gen(4)))
    assert [t for t, _ in ddpm] == list(range(T - 2, -2, -1))
    assert torch.equal(ddpm[-1][1], diffusion.ddpm_sample(oracle, x_T, gen(4)))


def test_clipping_keeps_x0_hat_in_range(diffusion):
    x_T = 3 * torch.randn(2, 1, 4, 4, generator=gen())
    big = gaussian_oracle(diffusion, 4.0)  # data far outside [-1, 1]
    assert diffusion.ddim_sample(big, x_T, 10).abs().max() > 1
    assert diffusion.ddim_sample(big, x_T, 10, clip_x0=True).abs().max() <= 1 + 1e-6


# ------------------------------------------------------------------------------------ guidance
def test_classifier_free_guidance_endpoints():
    cond, null = torch.randn(2, 3, 1, 4, 4, generator=gen())
    assert torch.equal(classifier_free_guidance(cond, null, 1.0), cond)
    assert torch.equal(classifier_free_guidance(cond, null, 0.0), null)
    torch.testing.assert_close(classifier_free_guidance(cond, null, 3.0), 3 * cond - 2 * null)


def test_guided_eps_fn_one_batched_call():
    calls = []

    def model(x, t, c):
        calls.append(x.shape[0])
        return x * c.view(-1, 1, 1, 1) + t.view(-1, 1, 1, 1)

    x = torch.randn(3, 1, 2, 2, generator=gen())
    t = torch.tensor([1, 2, 3])
    cond, null = torch.tensor([2.0, 3.0, 4.0]), torch.tensor(0.5)
    assert torch.equal(guided_eps_fn(model, cond, null, 1.0)(x, t), model(x, t, cond))
    assert torch.equal(guided_eps_fn(model, cond, null, 0.0)(x, t), model(x, t, null.expand(3)))
    calls.clear()
    guided = guided_eps_fn(model, cond, null, 2.5)(x, t)
    assert calls == [6]  # one forward pass on cond and null together
    expected = 2.5 * model(x, t, cond) - 1.5 * model(x, t, null.expand(3))
    torch.testing.assert_close(guided, expected)


# ------------------------------------------------------------------------------------ bad input
def test_bad_inputs_raise_clear_errors(diffusion):
    x = torch.zeros(2, 1, 4, 4)
    eps_fn = gaussian_oracle(diffusion, 1.0)
    with pytest.raises(ValueError, match="unknown beta schedule"):
        GaussianDiffusion("quadratic")
    with pytest.raises(ValueError, match="positive integer"):
        beta_schedule("linear", 0)
    with pytest.raises(ValueError, match="timesteps >= 21"):
        beta_schedule("linear", 10)
    with pytest.raises(ValueError, match="steps must be an integer in"):
        diffusion.ddim_sample(eps_fn, x, steps=0)
    with pytest.raises(ValueError, match="steps must be an integer in"):
        diffusion.ddim_invert(eps_fn, x, steps=T + 1)
    with pytest.raises(ValueError, match="eta must be >= 0"):
        diffusion.ddim_sample(eps_fn, x, steps=5, eta=-0.1)
    with pytest.raises(ValueError, match="timesteps must lie in"):
        diffusion.q_sample(x, T)
    with pytest.raises(ValueError, match="timesteps must lie in"):
        diffusion.q_sample(x, torch.tensor([0, -1]))
    with pytest.raises(ValueError, match="integer tensor of shape"):
        diffusion.q_sample(x, torch.tensor([0.5, 1.0]))
    with pytest.raises(ValueError, match="4-D tensor"):
        diffusion.q_sample(torch.zeros(1, 4, 4), 0)
    with pytest.raises(ValueError, match="4-D tensor"):
        diffusion.ddim_invert(eps_fn, torch.zeros(4, 4))
    with pytest.raises(ValueError, match="fixed_point_iters"):
        diffusion.ddim_invert(eps_fn, x, 5, fixed_point_iters=-1)
    with pytest.raises(ValueError, match="backwards in time"):
        diffusion.ddim_step(x, 5, 5, x)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda_like_on_cpu():
    cpu = GaussianDiffusion("cosine", 200)
    images = torch.rand(32, 1, 8, 8, generator=gen()) * 2 - 1
    model_cpu = GaussianDenoiser(cpu, images)
    model_gpu = copy.deepcopy(model_cpu).to("cuda")
    gpu = model_gpu.diffusion
    x0 = images[:4]
    x_T = cpu.ddim_invert(model_cpu, x0, 20)
    x_T_gpu = gpu.ddim_invert(model_gpu, x0.cuda(), 20)
    assert x_T_gpu.device.type == "cuda"
    torch.testing.assert_close(x_T_gpu.cpu(), x_T, rtol=1e-4, atol=1e-4)
    noisy_cpu = cpu.ddim_sample(model_cpu, x_T, 20, eta=1.0, generator=gen(5))
    noisy_gpu = gpu.ddim_sample(model_gpu, x_T_gpu, 20, eta=1.0, generator=gen(5))
    torch.testing.assert_close(noisy_gpu.cpu(), noisy_cpu, rtol=1e-4, atol=1e-4)
    t = gpu.sample_timesteps(4, device="cuda", generator=gen())
    loss = gpu.training_loss(model_gpu, x0.cuda(), t, generator=gen())
    assert t.device.type == "cuda" and loss.device.type == "cuda" and loss.shape == (4,)
    labels = torch.arange(4).repeat(8)
    empirical = EmpiricalDenoiser(gpu, images.cuda(), labels.cuda())
    guided = guided_eps_fn(empirical, torch.arange(4, device="cuda"), NULL_LABEL, 3.0)
    assert gpu.ddim_sample(guided, x_T_gpu, 10).device.type == "cuda"
