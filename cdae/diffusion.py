"""The diffusion engine: forward noising, the eps loss, DDPM and DDIM sampling, DDIM inversion.

One class, :class:`GaussianDiffusion`, whose methods are the equations of DDPM (Ho et al. 2020)
and DDIM (Song et al. 2021), independent of any network: the network is passed to each sampler as
an ``eps_fn(x_t, t) -> eps`` callable, ``x_t`` (B, C, H, W) and ``t`` (B,) long.

Conventions (read these once):

- Timesteps are ``t = 0 .. T-1``; ``abar_t = prod_{s<=t} (1 - beta_s)``, so ``t = 0`` is already
  slightly noisy and ``t = T-1`` is (almost) pure noise. "``t = -1``" stands for the clean image:
  ``abar_{-1} = 1``. Every sampler starts at ``t = T-1`` and its last step lands on ``t = -1``.
- DDIM subsequence (:meth:`GaussianDiffusion.ddim_timesteps`): ``round(linspace(T-1, 0, steps))``,
  descending, always contains ``T-1`` and (for ``steps >= 2``) ``0``; ``steps = T`` is every step.
- Clipping: samplers may clip ``x0_hat`` to [-1, 1] (``clip_x0=True``); inversion never clips,
  because a clipped step is not invertible.

Also here: classifier-free guidance, and two exact optimal denoisers that need no training, for
teaching and testing: :class:`EmpiricalDenoiser` (data = K fixed images; it memorises) and
:class:`GaussianDenoiser` (data = a Gaussian fitted to images; smooth, invertible).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from numbers import Integral

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

#: ``eps_fn(x_t (B,C,H,W), t (B,) long) -> eps (B,C,H,W)``: a noise-prediction network.
EpsFn = Callable[[Tensor, Tensor], Tensor]

#: Label meaning "no class" for :class:`EmpiricalDenoiser` (the unconditional model).
NULL_LABEL = -1

SCHEDULES = ("linear", "cosine")


def beta_schedule(name: str, timesteps: int = 1000) -> Tensor:
    """Noise variances ``beta_t``, t = 0..T-1, as a float64 tensor (T,).

    - ``"linear"`` (DDPM): evenly from ``1e-4 * 1000/T`` to ``0.02 * 1000/T`` (exactly 1e-4 to
      0.02 at T = 1000; the scaling keeps the total noise comparable for other T).
    - ``"cosine"`` (Nichol & Dhariwal 2021): ``abar(t) = f(t)/f(0)``,
      ``f(t) = cos²(((t/T) + s) / (1 + s) · π/2)``, s = 0.008, ``beta_t = 1 - abar(t+1)/abar(t)``
      clipped at 0.999.
    """
    if not isinstance(timesteps, Integral) or timesteps < 1:
        raise ValueError(f"timesteps must be a positive integer, got {timesteps!r}")
    if name == "linear":
        scale = 1000.0 / timesteps
        betas = torch.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=torch.float64)
        if betas[-1] >= 1.0:
            raise ValueError(
                f"the linear schedule needs timesteps >= 21 (beta would reach {betas[-1]:.2f} "
                f"at T={timesteps}); use more timesteps or the 'cosine' schedule"
            )
        return betas
    if name == "cosine":
        s = 0.008
        steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
        f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2  # f(t), t = 0..T
        abar = f / f[0]
        return (1.0 - abar[1:] / abar[:-1]).clamp(max=0.999)  # beta_t = 1 - abar(t+1)/abar(t)
    raise ValueError(f"unknown beta schedule {name!r}; choose one of {SCHEDULES}")


def _check_image(x: Tensor, name: str = "x") -> None:
    if not isinstance(x, Tensor) or x.ndim != 4:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(
            f"{name} must be a 4-D tensor (B, C, H, W), got {shape}; "
            "add a batch dimension with x.unsqueeze(0)"
        )


def _randn(
    shape: Sequence[int],
    like: Tensor | None,
    generator: torch.Generator | None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Standard normal noise, drawn on the generator's device (so a CPU generator gives the same
    numbers whatever the target device), then moved to ``like``'s device and dtype (else float32
    on ``device``)."""
    device = like.device if like is not None else device
    dtype = like.dtype if like is not None else torch.float32
    source = generator.device if generator is not None else device
    z = torch.randn(tuple(shape), generator=generator, device=source, dtype=dtype)
    return z.to(device)


def _last(states: Iterator[tuple[int, Tensor]]) -> Tensor:
    """The final image of a sampler's trajectory."""
    return deque(states, maxlen=1).pop()[1]


def classifier_free_guidance(eps_cond: Tensor, eps_null: Tensor, w: float) -> Tensor:
    """Guided noise ``eps = w · eps_cond + (1 - w) · eps_null`` (Ho & Salimans 2022).

    ``w = 1`` is the conditional prediction (exactly), ``w = 0`` the unconditional one, ``w > 1``
    pushes samples further towards the condition.
    """
    return w * eps_cond + (1.0 - w) * eps_null


def guided_eps_fn(
    model: Callable[[Tensor, Tensor, Tensor], Tensor],
    cond: Tensor,
    null_cond: Tensor | float,
    w: float,
) -> EpsFn:
    """An ``eps_fn`` for the samplers from a conditional ``model(x_t, t, cond) -> eps``.

    ``cond`` (B, ...) is the condition of each sample, ``null_cond`` the "no condition" value,
    broadcastable to ``cond`` (e.g. a null token (d,) or the label ``NULL_LABEL``). For ``w``
    other than 0 and 1 the model runs once on a batch of 2B (cond and null concatenated); for
    ``w = 1`` (``w = 0``) only the conditional (unconditional) half is computed.
    """
    null = torch.as_tensor(null_cond, dtype=cond.dtype, device=cond.device).expand_as(cond)
    if w == 1:
        return lambda x_t, t: model(x_t, t, cond)
    if w == 0:
        return lambda x_t, t: model(x_t, t, null)

    def eps_fn(x_t: Tensor, t: Tensor) -> Tensor:
        if x_t.shape[0] != cond.shape[0]:
            raise ValueError(f"batch of {x_t.shape[0]} images but {cond.shape[0]} conditions")
        eps = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([cond, null]))
        eps_cond, eps_null = eps.chunk(2)
        return classifier_free_guidance(eps_cond, eps_null, w)

    return eps_fn


class GaussianDiffusion(nn.Module):
    """DDPM forward process, eps loss, and DDPM/DDIM samplers for a fixed beta schedule.

    The schedule is computed in float64 and kept as float32 buffers (non-persistent: rebuilt from
    the constructor arguments, never stored in checkpoints), so ``.to(device)`` moves it.
    """

    betas: Tensor
    alphas_cumprod: Tensor
    alphas_cumprod_padded: Tensor

    def __init__(self, schedule: str = "linear", timesteps: int = 1000) -> None:
        super().__init__()
        betas = beta_schedule(schedule, timesteps)  # (T,) float64
        abar = torch.cumprod(1.0 - betas, dim=0)  # abar_t = prod_{s<=t} (1 - beta_s)
        self.schedule = schedule
        self.timesteps = timesteps
        self.register_buffer("betas", betas.float(), persistent=False)
        self.register_buffer("alphas_cumprod", abar.float(), persistent=False)
        # [abar_{-1} = 1, abar_0, ..., abar_{T-1}], indexed by t + 1 so that t = -1 means clean
        padded = torch.cat([torch.ones(1, dtype=torch.float64), abar]).float()
        self.register_buffer("alphas_cumprod_padded", padded, persistent=False)

    def extra_repr(self) -> str:
        return f"schedule={self.schedule!r}, timesteps={self.timesteps}"

    # ----------------------------------------------------------------------------- helpers
    def _t(self, t: Tensor | int, x: Tensor, allow_clean: bool = False) -> Tensor:
        """Validate ``t`` (int or (B,) integer tensor) and return it as (B,) long on x's device."""
        low = -1 if allow_clean else 0
        if isinstance(t, Integral):
            t = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        if not isinstance(t, Tensor) or t.dtype.is_floating_point or t.shape != (x.shape[0],):
            got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(
                f"t must be an int or an integer tensor of shape ({x.shape[0]},), got {got}"
            )
        if t.numel() and (int(t.min()) < low or int(t.max()) > self.timesteps - 1):
            raise ValueError(
                f"timesteps must lie in [{low}, {self.timesteps - 1}], got values "
                f"in [{int(t.min())}, {int(t.max())}]"
            )
        return t.to(x.device, torch.long)

    @staticmethod
    def _gather(table: Tensor, index: Tensor, like: Tensor) -> Tensor:
        """``table[index]`` as (B, 1, 1, 1) on ``like``'s device, in its dtype."""
        return table[index.to(table.device)].to(like.device, like.dtype).view(-1, 1, 1, 1)

    def _abar(self, t: Tensor, like: Tensor) -> Tensor:
        """``abar_t`` per sample, (B, 1, 1, 1); ``abar_{-1} = 1`` (the clean image)."""
        return self._gather(self.alphas_cumprod_padded, t + 1, like)

    def _check_steps(self, steps: int) -> None:
        if not isinstance(steps, Integral) or not 1 <= steps <= self.timesteps:
            raise ValueError(f"steps must be an integer in [1, {self.timesteps}], got {steps!r}")

    # ------------------------------------------------------------------- forward process
    def q_sample(
        self,
        x0: Tensor,
        t: Tensor | int,
        noise: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Sample q(x_t | x_0): ``x_t = sqrt(abar_t) · x0 + sqrt(1 - abar_t) · eps``.

        x0 (B, C, H, W), t (B,) or int, noise (B, C, H, W) or None (drawn from ``generator``).
        """
        _check_image(x0, "x0")
        abar = self._abar(self._t(t, x0), x0)  # (B, 1, 1, 1)
        noise = _randn(x0.shape, x0, generator) if noise is None else noise
        return abar.sqrt() * x0 + (1.0 - abar).sqrt() * noise

    def sample_timesteps(
        self,
        batch: int,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Timesteps t ~ Uniform{0, ..., T-1}, shape (batch,) long."""
        source = generator.device if generator is not None else device
        t = torch.randint(0, self.timesteps, (batch,), generator=generator, device=source)
        return t.to(device) if device is not None else t

    def noise_jump(
        self, x0: Tensor, generator: torch.Generator | None = None, t: int | None = None
    ) -> Tensor:
        """The released code's stochastic encoding: ``x_T = q_sample(x0, T-1)``.

        ``x_T = sqrt(abar_{T-1}) · x0 + sqrt(1 - abar_{T-1}) · eps`` (≈ 0.006 · x0 + noise for the
        linear schedule); the image's style survives only through whatever conditions the decoder.
        ``t`` picks another timestep.
        """
        return self.q_sample(x0, self.timesteps - 1 if t is None else t, generator=generator)

    def training_loss(
        self,
        eps_fn: EpsFn,
        x0: Tensor,
        t: Tensor | None = None,
        noise: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Simple DDPM loss per sample: ``|| eps - eps_fn(x_t, t) ||²`` averaged over (C, H, W).

        x0 (B, C, H, W); t (B,) drawn uniformly and noise drawn from ``generator`` if None.
        Returns (B,); take ``.mean()`` for the batch loss.
        """
        _check_image(x0, "x0")
        if t is None:
            t = self.sample_timesteps(x0.shape[0], x0.device, generator)
        t = self._t(t, x0)
        noise = _randn(x0.shape, x0, generator) if noise is None else noise
        x_t = self.q_sample(x0, t, noise)
        return (noise - eps_fn(x_t, t)).pow(2).mean(dim=(1, 2, 3))

    def predict_x0(self, x_t: Tensor, t: Tensor | int, eps: Tensor) -> Tensor:
        """Clean image implied by eps: ``x0_hat = (x_t - sqrt(1-abar_t) eps) / sqrt(abar_t)``."""
        _check_image(x_t, "x_t")
        abar = self._abar(self._t(t, x_t), x_t)
        return (x_t - (1.0 - abar).sqrt() * eps) / abar.sqrt()

    # ------------------------------------------------------------------------------- DDPM
    def ddpm_step(
        self,
        x_t: Tensor,
        t: Tensor | int,
        eps: Tensor,
        noise: Tensor | None = None,
        clip_x0: bool = False,
    ) -> Tensor:
        """One ancestral step x_t -> x_{t-1} ~ q(x_{t-1} | x_t, x0_hat) (DDPM eqs. 6-7).

        ``mu = sqrt(abar_{t-1}) beta_t / (1 - abar_t) · x0_hat
             + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) · x_t`` (equal to DDPM eq. 11
        unclipped), variance ``beta~_t = (1 - abar_{t-1}) / (1 - abar_t) · beta_t`` (0 at t = 0).
        x_t, eps, noise (B, C, H, W); noise None draws it with ``torch.randn_like``.
        """
        _check_image(x_t, "x_t")
        t = self._t(t, x_t)
        abar, abar_prev = self._abar(t, x_t), self._abar(t - 1, x_t)
        beta = self._gather(self.betas, t, x_t)  # beta_t = 1 - alpha_t
        x0_hat = (x_t - (1.0 - abar).sqrt() * eps) / abar.sqrt()
        if clip_x0:
            x0_hat = x0_hat.clamp(-1.0, 1.0)
        mean = (
            abar_prev.sqrt() * beta * x0_hat + (1.0 - beta).sqrt() * (1.0 - abar_prev) * x_t
        ) / (1.0 - abar)
        var = (1.0 - abar_prev) / (1.0 - abar) * beta  # beta~_t
        noise = torch.randn_like(x_t) if noise is None else noise
        return mean + var.sqrt() * noise

    def ddpm_trajectory(
        self,
        eps_fn: EpsFn,
        x_T: Tensor,
        generator: torch.Generator | None = None,
        clip_x0: bool = False,
        progress: bool = False,
    ) -> Iterator[tuple[int, Tensor]]:
        """Yield ``(t - 1, x_{t-1})`` after each of the T ancestral steps from x_T (at t = T-1)
        down to the clean image (``t - 1 = -1``)."""
        _check_image(x_T, "x_T")
        x = x_T
        for step in tqdm(range(self.timesteps - 1, -1, -1), disable=not progress, desc="DDPM"):
            t = torch.full((x.shape[0],), step, dtype=torch.long, device=x.device)
            x = self.ddpm_step(x, t, eps_fn(x, t), _randn(x.shape, x, generator), clip_x0)
            yield step - 1, x

    def ddpm_sample(
        self,
        eps_fn: EpsFn,
        x_T: Tensor | Sequence[int],
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        clip_x0: bool = False,
        progress: bool = False,
    ) -> Tensor:
        """Ancestral sampling with all T steps. ``x_T`` is a starting tensor (B, C, H, W) or a
        shape, in which case x_T ~ N(0, I) is drawn from ``generator`` on ``device``."""
        if not isinstance(x_T, Tensor):
            x_T = _randn(x_T, None, generator, device)
        return _last(self.ddpm_trajectory(eps_fn, x_T, generator, clip_x0, progress))

    # ------------------------------------------------------------------------------- DDIM
    def ddim_timesteps(self, steps: int) -> Tensor:
        """The DDIM subsequence tau (steps,) long, descending: ``round(linspace(T-1, 0, steps))``.

        Always starts at T-1; ends at 0 when steps >= 2 (a single step jumps from T-1 to clean);
        ``steps = T`` gives every timestep T-1, ..., 0. The samplers add the final ``t = -1``.
        """
        self._check_steps(steps)
        return torch.linspace(self.timesteps - 1, 0, steps, dtype=torch.float64).round().long()

    def ddim_step(
        self,
        x_t: Tensor,
        t: Tensor | int,
        t_prev: Tensor | int,
        eps: Tensor,
        eta: float = 0.0,
        noise: Tensor | None = None,
        clip_x0: bool = False,
    ) -> Tensor:
        """One DDIM step x_t -> x_{t'} (Song et al. 2021, eq. 12); t' = t_prev < t, -1 = clean.

        ``x_{t'} = sqrt(abar_{t'}) x0_hat + sqrt(1 - abar_{t'} - sigma²) eps + sigma z``,
        ``sigma = eta · sqrt((1 - abar_{t'}) / (1 - abar_t)) · sqrt(1 - abar_t / abar_{t'})``.
        eta = 0 is the deterministic ODE step, eta = 1 with t' = t-1 the DDPM step. With
        ``clip_x0`` the clipped x0_hat also redefines eps (so the step stays on the DDIM path).
        """
        _check_image(x_t, "x_t")
        if eta < 0:
            raise ValueError(f"eta must be >= 0 (0: deterministic DDIM, 1: DDPM-like), got {eta}")
        t, t_prev = self._t(t, x_t), self._t(t_prev, x_t, allow_clean=True)
        if bool((t_prev >= t).any()):
            raise ValueError("ddim_step goes backwards in time: every t_prev must be < t")
        abar, abar_prev = self._abar(t, x_t), self._abar(t_prev, x_t)
        x0_hat = (x_t - (1.0 - abar).sqrt() * eps) / abar.sqrt()
        if clip_x0:
            x0_hat = x0_hat.clamp(-1.0, 1.0)
            eps = (x_t - abar.sqrt() * x0_hat) / (1.0 - abar).sqrt()
        sigma = eta * ((1.0 - abar_prev) / (1.0 - abar) * (1.0 - abar / abar_prev)).sqrt()
        direction = (1.0 - abar_prev - sigma**2).clamp(min=0.0).sqrt() * eps
        x_prev = abar_prev.sqrt() * x0_hat + direction
        if eta == 0:
            return x_prev
        noise = torch.randn_like(x_t) if noise is None else noise
        return x_prev + sigma * noise

    def ddim_trajectory(
        self,
        eps_fn: EpsFn,
        x_T: Tensor,
        steps: int = 50,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
        clip_x0: bool = False,
        progress: bool = False,
    ) -> Iterator[tuple[int, Tensor]]:
        """Yield ``(t_prev, x_{t_prev})`` after each DDIM step, from x_T (at t = T-1) down to the
        clean image (``t_prev = -1``)."""
        _check_image(x_T, "x_T")
        taus = self.ddim_timesteps(steps).tolist() + [-1]
        x = x_T
        for t, t_prev in tqdm(
            list(zip(taus[:-1], taus[1:], strict=True)), disable=not progress, desc="DDIM"
        ):
            t_vec = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
            noise = _randn(x.shape, x, generator) if eta > 0 else None
            x = self.ddim_step(x, t_vec, t_prev, eps_fn(x, t_vec), eta, noise, clip_x0)
            yield t_prev, x

    def ddim_sample(
        self,
        eps_fn: EpsFn,
        x_T: Tensor,
        steps: int = 50,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
        clip_x0: bool = False,
        progress: bool = False,
    ) -> Tensor:
        """DDIM sampling from x_T (B, C, H, W) with ``steps`` network calls; returns x_0.

        eta = 0 (default) is deterministic: the decoder of :meth:`ddim_invert`. ``clip_x0``
        clips every x0_hat to [-1, 1] (off by default: it breaks the exact inverse).
        """
        return _last(self.ddim_trajectory(eps_fn, x_T, steps, eta, generator, clip_x0, progress))

    def ddim_invert(
        self,
        eps_fn: EpsFn,
        x0: Tensor,
        steps: int = 50,
        fixed_point_iters: int = 0,
        progress: bool = False,
    ) -> Tensor:
        """Deterministic DDIM inversion (encoding) x0 -> x_T, the eta = 0 step run forward in time.

        Over the ascending subsequence -1 = s_0 < s_1 < ... < s_K = T-1, with
        ``e = eps_fn(x_{s_{k-1}}, s_k)``:
        ``x_{s_k} = sqrt(abar_{s_k}) · x0_hat + sqrt(1 - abar_{s_k}) · e``,
        ``x0_hat = (x_{s_{k-1}} - sqrt(1 - abar_{s_{k-1}}) e) / sqrt(abar_{s_{k-1}})``.
        The network is evaluated at the target time s_k, the same t the sampler uses for the step
        back, so the only approximation is x_{s_{k-1}} standing in for x_{s_k}: if eps_fn does not
        depend on x, ``ddim_sample(ddim_invert(x0))`` returns x0 exactly. No clipping.

        ``fixed_point_iters > 0`` removes that approximation: each step is redone with
        ``e = eps_fn(x_{s_k}, s_k)`` at the latest estimate of x_{s_k} (a fixed-point iteration
        for the exact inverse of the sampler's step, as in Pan et al. 2023, "AIDI"), at the cost of
        ``1 + fixed_point_iters`` network calls per step.
        """
        _check_image(x0, "x0")
        if not isinstance(fixed_point_iters, int) or fixed_point_iters < 0:
            raise ValueError(
                f"fixed_point_iters must be an integer >= 0, got {fixed_point_iters!r}"
            )
        taus = [-1] + self.ddim_timesteps(steps).flip(0).tolist()
        pairs = list(zip(taus[:-1], taus[1:], strict=True))
        x = x0
        for s, t in tqdm(pairs, disable=not progress, desc="DDIM inversion"):
            t_vec = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
            x_next = self.ddim_invert_step(x, s, t_vec, eps_fn(x, t_vec))
            for _ in range(fixed_point_iters):
                x_next = self.ddim_invert_step(x, s, t_vec, eps_fn(x_next, t_vec))
            x = x_next
        return x

    def ddim_invert_step(
        self, x_s: Tensor, s: Tensor | int, t: Tensor | int, eps: Tensor
    ) -> Tensor:
        """One inversion step x_s -> x_t, s < t (s = -1: x_s is the clean image), eta = 0:
        ``x_t = sqrt(abar_t) · (x_s - sqrt(1 - abar_s) eps) / sqrt(abar_s) + sqrt(1 - abar_t) eps``.
        """
        _check_image(x_s, "x_s")
        s, t = self._t(s, x_s, allow_clean=True), self._t(t, x_s)
        if bool((s >= t).any()):
            raise ValueError("ddim_invert_step goes forwards in time: every s must be < t")
        abar_s, abar_t = self._abar(s, x_s), self._abar(t, x_s)
        x0_hat = (x_s - (1.0 - abar_s).sqrt() * eps) / abar_s.sqrt()
        return abar_t.sqrt() * x0_hat + (1.0 - abar_t).sqrt() * eps


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
        _check_image(images, "images")
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
        t = self.diffusion._t(t, x_t)
        abar = self.diffusion._abar(t, self.images).view(-1, 1)  # (B, 1)
        x = x_t.to(self.images).flatten(1)  # (B, D)
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
        t = self.diffusion._t(t, x_t)
        abar = self.diffusion._abar(t, x_t)
        return (x_t - abar.sqrt() * self.predict_x0(x_t, t, y)) / (1.0 - abar).sqrt()


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
        _check_image(images, "images")
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
        t = self.diffusion._t(t, x_t)
        abar = self.diffusion._abar(t, self.mean).view(-1, 1)  # (B, 1)
        coords = (x_t.to(self.mean).flatten(1) - abar.sqrt() * self.mean) @ self.eigvecs  # (B, D)
        gain = abar.sqrt() * self.eigvals / (abar * self.eigvals + 1.0 - abar)  # (B, D)
        x0 = self.mean + (gain * coords) @ self.eigvecs.T
        return x0.view(-1, *self.shape).to(x_t.dtype)

    def forward(self, x_t: Tensor, t: Tensor | int) -> Tensor:
        """``eps*(x_t, t) = (x_t - sqrt(abar_t) x0*) / sqrt(1 - abar_t)``, (B, C, H, W)."""
        t = self.diffusion._t(t, x_t)
        abar = self.diffusion._abar(t, x_t)
        return (x_t - abar.sqrt() * self.predict_x0(x_t, t)) / (1.0 - abar).sqrt()
