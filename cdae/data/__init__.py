"""Datasets: MNIST, morphometry, Causal Morpho-MNIST, Pendulum, CausalCircuit, torch Datasets."""
