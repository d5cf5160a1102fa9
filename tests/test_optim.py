"""The gradient clip: per module, the decoder's update does not depend on the size of the KL."""

from __future__ import annotations

import pytest
import torch
from tiny_models import TINY

from cdae import CausalGraph
from cdae.diffusion import GaussianDiffusion
from cdae.models import ModelConfig, build_model
from cdae.train.optim import GRAD_GROUPS, clip_gradients, gradient_groups


def decoder_update(kl_weight: float, by: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The UNet's clipped gradient (flattened) and the pre-clip group norms for one batch of
    L = mse + kl_weight · (kl_u + kl_z) on a tiny CausalDiffAE with a sharp label prior."""
    torch.manual_seed(0)
    graph = CausalGraph.preset("morphomnist")
    config = ModelConfig.small(image_size=28, label_prior_variance=0.01, timesteps=100, **TINY)
    model = build_model(graph, config, "causal_diffae")
    x = torch.rand(8, 1, 28, 28) * 2 - 1
    y = torch.cat([torch.randn(8, 2), torch.randint(0, 10, (8, 1)).float()], dim=1)
    out = model.loss(x, y, GaussianDiffusion("linear", 100), step=10_000,
                     generator=torch.Generator().manual_seed(0))
    (out["mse"] + kl_weight * (out["kl_u"] + out["kl_z"])).backward()
    groups = gradient_groups(model)
    norms = clip_gradients(groups, 1.0, by)
    return torch.cat([p.grad.flatten() for p in groups["decoder"]]), norms


def test_groups_split_the_unet_and_null_token_from_the_latent_part():
    model = build_model(CausalGraph.preset("morphomnist"),
                        ModelConfig.small(image_size=28, **TINY), "causal_diffae")
    groups = gradient_groups(model)
    assert tuple(groups) == GRAD_GROUPS
    decoder = {id(p) for p in [*model.unet.parameters(), *model.null.parameters()]}
    assert {id(p) for p in groups["decoder"]} == decoder
    assert {id(p) for p in groups["latent"]} == {id(p) for p in model.encoder.parameters()} | {
        id(p) for p in model.causal.parameters()} | {id(p) for p in model.prior.parameters()}


def test_module_clip_keeps_the_decoder_update_independent_of_the_kl_size():
    small, norms_small = decoder_update(1.0, "module")
    large, norms_large = decoder_update(1000.0, "module")
    assert norms_large[1] > 100 * norms_small[1] > 0  # the latent part's gradient grew
    assert torch.allclose(norms_small[0], norms_large[0])  # the decoder's did not
    torch.testing.assert_close(small, large)
    # a global clip throttles the decoder by the KL's size
    global_small, _ = decoder_update(1.0, "global")
    global_large, _ = decoder_update(1000.0, "global")
    ratio = global_small.norm() / global_large.norm()
    assert ratio > 50, ratio


def test_module_clip_bounds_each_group_and_none_only_measures():
    model = torch.nn.ModuleDict({"unet": torch.nn.Linear(3, 3), "encoder": torch.nn.Linear(3, 3)})
    for p, scale in zip(model.parameters(), (10.0, 10.0, 0.01, 0.01), strict=True):
        p.grad = torch.full_like(p, scale)
    groups = gradient_groups(model)
    before = clip_gradients(groups, None)
    assert before[0] == pytest.approx(10.0 * 12**0.5) and before[1] == pytest.approx(0.01 * 12**0.5)
    clip_gradients(groups, 1.0, "module")
    after = clip_gradients(groups, None)
    assert after[0] == pytest.approx(1.0, rel=1e-4)  # clipped to the bound
    assert after[1] == pytest.approx(before[1])  # below it: untouched
    with pytest.raises(ValueError, match="global' or 'module"):
        clip_gradients(groups, 1.0, "per-layer")
