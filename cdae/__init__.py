"""cdae: Causal Diffusion Autoencoders (CausalDiffAE) as a small, readable PyTorch library."""

from cdae.graph import CausalGraph

__all__ = ["CausalGraph", "__version__"]
__version__ = "0.1.0"
