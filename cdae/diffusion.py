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

Also here: classifier-free guidance. Exact denoisers that need no training, to feed these
samplers while teaching and testing, are in :mod:`cdae.denoisers`.
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


def check_image(x: Tensor, name: str = "x") -> None:
    """Raise unless ``x`` is a 4-D image batch (B, C, H, W)."""
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


def _full_t(step: int, x: Tensor) -> Tensor:
    """(B,) long tensor of ``step`` on x's device, B = x.shape[0]."""
    return torch.full((x.shape[0],), step, dtype=torch.long, device=x.device)


def _x0_from_eps(x_t: Tensor, abar: Tensor, eps: Tensor) -> Tensor:
    """Clean image implied by the noise: ``x0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar)``."""
    return (x_t - (1.0 - abar).sqrt() * eps) / abar.sqrt()


def _eps_from_x0(x_t: Tensor, abar: Tensor, x0: Tensor) -> Tensor:
    """Noise implied by a clean image: ``eps = (x_t - sqrt(abar) x0) / sqrt(1 - abar)``."""
    return (x_t - abar.sqrt() * x0) / (1.0 - abar).sqrt()


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
    broadcastable to ``cond`` (e.g. a null token (d,) or :data:`cdae.denoisers.NULL_LABEL`).
    For ``w`` other than 0 and 1 the model runs once on a batch of 2B (cond and null
    concatenated); for ``w = 1`` (``w = 0``) only the conditional (unconditional) half is
    computed.
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
        """Validate ``t`` (int or (B,) integer tensor) and return it as (B,) long on x's device.

        The value range is checked only for CPU tensors: on a GPU it would cost a host sync in
        every training step (there t comes from :meth:`sample_timesteps`, in range by design).
        """
        low = -1 if allow_clean else 0
        if isinstance(t, Integral):
            t = _full_t(t, x)
        if not isinstance(t, Tensor) or t.dtype.is_floating_point or t.shape != (x.shape[0],):
            got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(
                f"t must be an int or an integer tensor of shape ({x.shape[0]},), got {got}"
            )
        on_host = t.device.type == "cpu"
        if on_host and t.numel() and (int(t.min()) < low or int(t.max()) > self.timesteps - 1):
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

    def alpha_bar(self, t: Tensor | int, x: Tensor) -> Tensor:
        """``abar_t`` (B, 1, 1, 1) in x's dtype and device, for t an int or a (B,) tensor in
        [0, T-1]; B = x.shape[0]."""
        return self._abar(self._t(t, x), x)

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
        check_image(x0, "x0")
        abar = self.alpha_bar(t, x0)  # (B, 1, 1, 1)
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
        check_image(x0, "x0")
        if t is None:
            t = self.sample_timesteps(x0.shape[0], x0.device, generator)
        t = self._t(t, x0)
        noise = _randn(x0.shape, x0, generator) if noise is None else noise
        x_t = self.q_sample(x0, t, noise)
        return (noise - eps_fn(x_t, t)).pow(2).mean(dim=(1, 2, 3))

    def predict_x0(self, x_t: Tensor, t: Tensor | int, eps: Tensor) -> Tensor:
        """Clean image implied by eps: ``x0_hat = (x_t - sqrt(1-abar_t) eps) / sqrt(abar_t)``."""
        check_image(x_t, "x_t")
        return _x0_from_eps(x_t, self.alpha_bar(t, x_t), eps)

    def predict_eps(self, x_t: Tensor, t: Tensor | int, x0: Tensor) -> Tensor:
        """Noise implied by a clean image: ``eps = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t)``,
        the inverse of :meth:`predict_x0`; how a model that predicts x0 becomes an ``eps_fn``."""
        check_image(x_t, "x_t")
        return _eps_from_x0(x_t, self.alpha_bar(t, x_t), x0)

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
        check_image(x_t, "x_t")
        t = self._t(t, x_t)
        abar, abar_prev = self._abar(t, x_t), self._abar(t - 1, x_t)
        beta = self._gather(self.betas, t, x_t)  # beta_t = 1 - alpha_t
        x0_hat = _x0_from_eps(x_t, abar, eps)
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
        check_image(x_T, "x_T")
        x = x_T
        for step in tqdm(range(self.timesteps - 1, -1, -1), disable=not progress, desc="DDPM"):
            t = _full_t(step, x)
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
        check_image(x_t, "x_t")
        if eta < 0:
            raise ValueError(f"eta must be >= 0 (0: deterministic DDIM, 1: DDPM-like), got {eta}")
        t, t_prev = self._t(t, x_t), self._t(t_prev, x_t, allow_clean=True)
        if bool((t_prev >= t).any()):
            raise ValueError("ddim_step goes backwards in time: every t_prev must be < t")
        abar, abar_prev = self._abar(t, x_t), self._abar(t_prev, x_t)
        x0_hat = _x0_from_eps(x_t, abar, eps)
        if clip_x0:
            x0_hat = x0_hat.clamp(-1.0, 1.0)
            eps = _eps_from_x0(x_t, abar, x0_hat)
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
        check_image(x_T, "x_T")
        taus = self.ddim_timesteps(steps).tolist() + [-1]
        x = x_T
        for t, t_prev in tqdm(
            list(zip(taus[:-1], taus[1:], strict=True)), disable=not progress, desc="DDIM"
        ):
            t_vec = _full_t(t, x)
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
        check_image(x0, "x0")
        if not isinstance(fixed_point_iters, int) or fixed_point_iters < 0:
            raise ValueError(
                f"fixed_point_iters must be an integer >= 0, got {fixed_point_iters!r}"
            )
        taus = [-1] + self.ddim_timesteps(steps).flip(0).tolist()
        pairs = list(zip(taus[:-1], taus[1:], strict=True))
        x = x0
        for s, t in tqdm(pairs, disable=not progress, desc="DDIM inversion"):
            t_vec = _full_t(t, x)
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
        check_image(x_s, "x_s")
        s, t = self._t(s, x_s, allow_clean=True), self._t(t, x_s)
        if bool((s >= t).any()):
            raise ValueError("ddim_invert_step goes forwards in time: every s must be < t")
        abar_s, abar_t = self._abar(s, x_s), self._abar(t, x_s)
        x0_hat = _x0_from_eps(x_s, abar_s, eps)
        return abar_t.sqrt() * x0_hat + (1.0 - abar_t).sqrt() * eps
