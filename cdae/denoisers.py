"""Exact optimal denoisers that need no training: models to teach and test the samplers with.

Each is the minimum-error noise predictor ``eps*(x_t, t) = E[eps | x_t]`` for a data distribution
simple enough to have it in closed form, written as the posterior mean ``x0* = E[x0 | x_t]`` turned
into noise by :meth:`cdae.diffusion.GaussianDiffusion.predict_eps`. Both are ``eps_fn``s for the
samplers of :class:`~cdae.diffusion.GaussianDiffusion`:

* :class:`EmpiricalDenoiser`: data = K fixed images; it memorises (its samples are the images),
  and with labels it is a class-conditional model ready for classifier-free guidance;
* :class:`GaussianDenoiser`: data = a Gaussian fitted to images; smooth and invertible.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cdae.diffusion import GaussianDiffusion, check_image

#: Label meaning "no class" for :class:`EmpiricalDenoiser` (the unconditional model).
NULL_LABEL = -1


class EmpiricalDenoiser(nn.Module):
    """The exact optimal noise predictor when the data are K fixed images (uniform over them).

    For x_t = sqrt(abar) x_k + sqrt(1 - abar) eps with k uniform, the posterior over the source is
    ``p(k | x_t) = softmax_k( -||x_t - sqrt(abar) x_k||² / (2 (1 - abar)) )``, and
    ``x0* = sum_k p(k | x_t) x_k``, ``eps* = (x_t - sqrt(abar) x0*) / sqrt(1 - abar)``.
    With ``labels``, ``y`` restricts the sum to images of class y (``NULL_LABEL``: all images),
    which gives a class-conditional and an unconditional model in one, ready for guidance.
    It memorises: its samples are (close to) copies of the K images.
    """

    images: Tensor
    labels: Tensor

    def __init__(
        self, diffusion: GaussianDiffusion, images: Tensor, labels: Tensor | None = None
    ) -> None:
        super().__init__()
        check_image(images, "images")
        if labels is not None and labels.shape != (images.shape[0],):
            raise ValueError(
                f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}"
            )
        self.diffusion = diffusion
        self.register_buffer("images", images.double())  # (K, C, H, W), float64 for stability
        if labels is None:
            labels = torch.full((images.shape[0],), NULL_LABEL, dtype=torch.long)
        self.register_buffer("labels", labels.long())

    def posterior(self, x_t: Tensor, t: Tensor | int, y: Tensor | None = None) -> Tensor:
        """``p(k | x_t, y)`` (B, K): which of the K images x_t was noised from."""
        x = x_t.to(self.images)  # float64
        abar = self.diffusion.alpha_bar(t, x).view(-1, 1)  # (B, 1)
        x = x.flatten(1)  # (B, D)
        data = self.images.flatten(1)  # (K, D)
        # ||x - sqrt(abar) x_k||² = ||x||² - 2 sqrt(abar) <x, x_k> + abar ||x_k||²
        dist2 = (
            x.pow(2).sum(1, keepdim=True)
            - 2 * abar.sqrt() * (x @ data.T)
            + abar * data.pow(2).sum(1)
        )  # (B, K)
        logits = -dist2 / (2 * (1.0 - abar))
        if y is not None:
            y = y.to(self.labels.device).view(-1, 1)
            allowed = (y == NULL_LABEL) | (self.labels.view(1, -1) == y)  # (B, K)
            if not bool(allowed.any(dim=1).all()):
                raise ValueError("a requested class has no images in this EmpiricalDenoiser")
            logits = logits.masked_fill(~allowed, float("-inf"))
        return logits.softmax(dim=1)

    def predict_x0(self, x_t: Tensor, t: Tensor | int, y: Tensor | None = None) -> Tensor:
        """Posterior mean ``x0* = sum_k p(k | x_t) x_k``, (B, C, H, W) in x_t's dtype."""
        weights = self.posterior(x_t, t, y)  # (B, K)
        x0 = (weights @ self.images.flatten(1)).view(-1, *self.images.shape[1:])
        return x0.to(x_t.dtype)

    def forward(self, x_t: Tensor, t: Tensor | int, y: Tensor | None = None) -> Tensor:
        """``eps*(x_t, t) = (x_t - sqrt(abar_t) x0*) / sqrt(1 - abar_t)``, (B, C, H, W)."""
        return self.diffusion.predict_eps(x_t, t, self.predict_x0(x_t, t, y))


class GaussianDenoiser(nn.Module):
    """The exact optimal noise predictor when the data are Gaussian, N(mu, Sigma), fitted to images.

    With ``Sigma = U diag(lam) U^T`` and x_t = sqrt(abar) x0 + sqrt(1 - abar) eps, the posterior
    mean is ``x0* = mu + U diag(sqrt(abar) lam / (abar lam + 1 - abar)) U^T (x_t - sqrt(abar) mu)``
    and ``eps* = (x_t - sqrt(abar) x0*) / sqrt(1 - abar)``. Unlike :class:`EmpiricalDenoiser` it is
    smooth in x_t and covers images it was not fitted to (a crude but honest model, whose
    samples are blurry digits). ``min_variance`` is added to every eigenvalue of the fitted
    covariance so no direction is degenerate. Meant for small images (D = C·H·W up to a few
    thousand): the fit is a (D, D) eigendecomposition.
    """

    mean: Tensor
    eigvecs: Tensor
    eigvals: Tensor

    def __init__(
        self, diffusion: GaussianDiffusion, images: Tensor, min_variance: float = 1e-2
    ) -> None:
        super().__init__()
        check_image(images, "images")
        if images.shape[0] < 2 or min_variance <= 0:
            raise ValueError("GaussianDenoiser needs at least 2 images and min_variance > 0")
        self.diffusion = diffusion
        self.shape = tuple(images.shape[1:])
        data = images.double().flatten(1)  # (K, D)
        eigvals, eigvecs = torch.linalg.eigh(torch.cov(data.T))  # Sigma = U diag(lam) U^T
        self.register_buffer("mean", data.mean(0))  # (D,)
        self.register_buffer("eigvecs", eigvecs)  # (D, D), columns are U
        self.register_buffer("eigvals", eigvals.clamp(min=0.0) + min_variance)  # (D,)

    def predict_x0(self, x_t: Tensor, t: Tensor | int) -> Tensor:
        """Posterior mean x0* (B, C, H, W) in x_t's dtype."""
        x = x_t.to(self.mean)  # float64
        abar = self.diffusion.alpha_bar(t, x).view(-1, 1)  # (B, 1)
        coords = (x.flatten(1) - abar.sqrt() * self.mean) @ self.eigvecs  # (B, D)
        gain = abar.sqrt() * self.eigvals / (abar * self.eigvals + 1.0 - abar)  # (B, D)
        x0 = self.mean + (gain * coords) @ self.eigvecs.T
        return x0.view(-1, *self.shape).to(x_t.dtype)

    def forward(self, x_t: Tensor, t: Tensor | int) -> Tensor:
        """``eps*(x_t, t) = (x_t - sqrt(abar_t) x0*) / sqrt(1 - abar_t)``, (B, C, H, W)."""
        return self.diffusion.predict_eps(x_t, t, self.predict_x0(x_t, t))
