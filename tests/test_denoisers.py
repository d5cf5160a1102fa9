"""The analytic denoisers (cdae.denoisers), checked against brute-force and closed-form oracles."""

import pytest
import torch

from cdae.denoisers import NULL_LABEL, EmpiricalDenoiser, GaussianDenoiser
from cdae.diffusion import GaussianDiffusion


@pytest.fixture(scope="module")
def diffusion() -> GaussianDiffusion:
    return GaussianDiffusion("linear", 1000)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def abar_of(diffusion: GaussianDiffusion, t: torch.Tensor) -> torch.Tensor:
    """abar_t as (B, 1) float64, read straight from the buffer."""
    return diffusion.alphas_cumprod.double()[t].view(-1, 1)


def test_empirical_denoiser_posterior_and_memorisation(diffusion):
    images = torch.rand(5, 1, 4, 4, generator=gen(), dtype=torch.float64) * 2 - 1
    labels = torch.tensor([0, 0, 1, 1, 2])
    model = EmpiricalDenoiser(diffusion, images, labels)
    x_t = torch.randn(4, 1, 4, 4, generator=gen(1), dtype=torch.float64)
    t = torch.tensor([50, 200, 500, 900])
    abar = abar_of(diffusion, t)
    dist2 = ((x_t.flatten(1)[:, None] - abar.sqrt()[:, None] * images.flatten(1)[None]) ** 2).sum(
        -1
    )
    brute = torch.softmax(-dist2 / (2 * (1 - abar)), dim=1)
    torch.testing.assert_close(model.posterior(x_t, t), brute)
    masked = model.posterior(x_t, t, torch.tensor([1, NULL_LABEL, 2, 0]))
    assert masked[0, [0, 1, 4]].sum() == 0 and masked[2, :4].sum() == 0
    torch.testing.assert_close(masked[1], brute[1])
    # a nearly clean image is recognised: eps* is then the true noise
    noise = torch.randn(images.shape, generator=gen(2), dtype=torch.float64)
    x_small = diffusion.q_sample(images, 3, noise)
    torch.testing.assert_close(model(x_small, 3), noise, rtol=0, atol=1e-6)
    # sampling reproduces one of the training images (the optimal denoiser memorises)
    out = diffusion.ddim_sample(
        model, torch.randn(3, 1, 4, 4, generator=gen(3), dtype=torch.float64), 50
    )
    nearest = torch.cdist(out.flatten(1), images.flatten(1)).min(dim=1).values
    assert float(nearest.max()) < 1e-3


def test_gaussian_denoiser_matches_the_isotropic_oracle(diffusion):
    std = 0.5
    images = std * torch.randn(40000, 1, 3, 3, generator=gen(), dtype=torch.float64)
    model = GaussianDenoiser(diffusion, images, min_variance=1e-6)
    x_t = torch.randn(5, 1, 3, 3, generator=gen(1), dtype=torch.float64)
    t = torch.tensor([10, 100, 300, 600, 990])
    # data N(0, std² I): E[eps | x_t] = sqrt(1 - abar) x_t / (abar std² + 1 - abar)
    abar = abar_of(diffusion, t).view(-1, 1, 1, 1)
    oracle = (1 - abar).sqrt() * x_t / (abar * std**2 + 1 - abar)
    torch.testing.assert_close(model(x_t, t), oracle, rtol=0, atol=0.03)


def test_bad_inputs_raise_clear_errors(diffusion):
    x = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match="labels must have shape"):
        EmpiricalDenoiser(diffusion, x, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="has no images"):
        EmpiricalDenoiser(diffusion, x, torch.tensor([0, 0])).posterior(x, 3, torch.tensor([1, 0]))
    with pytest.raises(ValueError, match="4-D tensor"):
        EmpiricalDenoiser(diffusion, torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="at least 2 images"):
        GaussianDenoiser(diffusion, x[:1])
