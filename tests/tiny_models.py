"""A tiny, untrained CausalDiffAE (or baseline) wrapped for counterfactuals, shared by the tests
of the counterfactual API and the latent-space tools."""

import torch

from cdae import CausalGraph
from cdae.counterfactual import CounterfactualModel
from cdae.data.labels import LabelNormalizer
from cdae.diffusion import GaussianDiffusion
from cdae.models import ModelConfig, build_model

TINY = dict(encoder_channels=(8, 16), base_channels=8, channel_mult=(1, 2),
            attention_resolutions=(), latent_dim=4)


def tiny_normalizer(graph: CausalGraph) -> LabelNormalizer:
    """Morpho-MNIST-like scales: thickness 2.5 ± 0.6 px, intensity 152.5 ± 48.6 grey levels."""
    shift = {n: 0.0 if n in graph.categorical else 2.5 + 150 * (n == "intensity")
             for n in graph.nodes}
    scale = {n: 1.0 if n in graph.categorical else 0.6 + 48 * (n == "intensity")
             for n in graph.nodes}
    return LabelNormalizer(graph.nodes, shift, scale, graph.categorical)


def make_tiny_cf(kind: str = "causal_diffae", graph_name: str = "morphomnist",
                 seed: int = 0) -> CounterfactualModel:
    """A 28x28 model of ``kind`` whose weights are perturbed so every path carries signal."""
    torch.manual_seed(seed)
    graph = CausalGraph.preset(graph_name)
    model = build_model(graph, ModelConfig.small(image_size=28, **TINY), kind)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return CounterfactualModel(model, GaussianDiffusion("linear", 1000), tiny_normalizer(graph))
