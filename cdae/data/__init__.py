"""Datasets: MNIST access, morphometry, Causal Morpho-MNIST, Pendulum, CausalCircuit, torch Datasets."""
