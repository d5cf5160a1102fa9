"""What the benchmark's released effectiveness code does to a perfect intensity predictor.

Melistas et al.'s code (NeurIPS 2024) trains its Morpho-MNIST intensity predictor by MSE on
targets min-max scaled to [-1, 1], with a linear output; its effectiveness function then passes
that output through a sigmoid before mapping it back to grey levels. This script applies the same
two steps to the *true* intensities of a test set (a predictor with no error at all) and prints
the MAE that remains:

    python benchmarks/benchmark_sigmoid_check.py [t10k-morpho.csv]

Default CSV: the Deep SCM test set under ``CDAE_DEEPSCM_DIR``. The min-max constants are the
ones the benchmark's dataset code scales intensity with.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from cdae.paths import deepscm_dir

#: Intensity range the benchmark scales to [-1, 1] (grey levels).
BENCHMARK_INTENSITY_RANGE = (66.601204, 254.90317)


def scored_through_sigmoid(intensity: np.ndarray) -> np.ndarray:
    """(N,) grey levels a perfect predictor reports after scaling, sigmoid and unscaling."""
    low, high = BENCHMARK_INTENSITY_RANGE
    scaled = 2.0 * (intensity - low) / (high - low) - 1.0
    squashed = 1.0 / (1.0 + np.exp(-scaled))
    return (squashed + 1.0) / 2.0 * (high - low) + low


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else deepscm_dir() / "t10k-morpho.csv"
    if not path.is_file():
        print(f"error: {path} not found; give a Morpho-MNIST morphometry CSV with an 'intensity' "
              "column (python -m cdae data deepscm fetches the Deep SCM one)", file=sys.stderr)
        return 1
    intensity = pd.read_csv(path)["intensity"].to_numpy(dtype=np.float64)
    reported = scored_through_sigmoid(intensity)
    print(f"{path}: {len(intensity)} images, true intensity {intensity.min():.1f}-"
          f"{intensity.max():.1f}")
    print(f"perfect predictor through the sigmoid: MAE {np.abs(reported - intensity).mean():.1f} "
          f"grey levels; every reported value lies in {reported.min():.1f}-{reported.max():.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
