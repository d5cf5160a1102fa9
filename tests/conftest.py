"""Shared test setup: headless plotting and single-threaded BLAS so parallel workers don't fight."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

torch.set_num_threads(1)
