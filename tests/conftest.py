"""Shared test setup: headless plotting and single-threaded BLAS so parallel workers don't fight."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("CDAE_OFFLINE", "1")  # no test, notebook kernel included, downloads data

import torch  # noqa: E402

torch.set_num_threads(1)
