"""Benchmark the morphometry: images/s for measuring and for the perturbations, and its accuracy.

    OMP_NUM_THREADS=1 python benchmarks/bench_morphometry.py [--n 1000] [--deepscm 2000]

Prints, single-threaded on real MNIST test digits, (1) images/s for ``measure`` (batch),
``set_thickness`` (targets 0.5 + Gamma(10, rate 5)) and ``set_intensity``, by wall clock and by
CPU time of this process (the CPU figure is what one core would do without contention);
(2) the median / 90th percentile absolute error of set_thickness followed by measure;
(3) the fidelity of the morphometry to the Deep SCM labels of ``--deepscm`` images.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from cdae.data import morphometry
from cdae.data.idx import read_idx
from cdae.data.mnist import load_mnist
from cdae.paths import deepscm_dir


def rate(work: Callable[[], object], n: int) -> tuple[float, float]:
    """(images/s by wall clock, images/s by CPU time) of ``work``, which handles ``n`` images."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return n / (time.perf_counter() - wall), n / (time.process_time() - cpu)


def report(name: str, speeds: tuple[float, float]) -> None:
    wall, cpu = speeds
    print(f"{name:<14} {wall:8.0f} img/s wall ({1e3 / wall:5.2f} ms)"
          f"   {cpu:8.0f} img/s CPU ({1e3 / cpu:5.2f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000, help="MNIST test digits to process")
    parser.add_argument("--deepscm", type=int, default=2_000, help="Deep SCM images to check")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if os.environ.get("OMP_NUM_THREADS") != "1":
        print("note: set OMP_NUM_THREADS=1 for single-core numbers")

    digits = load_mnist("test").images[: args.n]
    n = len(digits)
    targets = 0.5 + np.random.default_rng(args.seed).gamma(10.0, 1 / 5.0, size=n)
    intensities = np.random.default_rng(args.seed + 1).uniform(64, 255, size=n)
    morphometry.measure(digits[:10])  # warm the caches
    out: list[np.ndarray] = []
    pairs = list(zip(digits, targets, strict=True))

    print(f"--- speed, {n} MNIST test digits, one process")
    report("measure", rate(lambda: morphometry.measure(digits), n))
    report("set_thickness",
           rate(lambda: out.extend(morphometry.set_thickness(*p) for p in pairs), n))
    report("set_intensity", rate(
        lambda: [morphometry.set_intensity(d, i)
                 for d, i in zip(out, intensities, strict=True)], n))

    error = np.abs(morphometry.measure(np.stack(out))["thickness"].to_numpy() - targets)
    print("--- set_thickness then measure, |measured - target| (px)")
    print(f"median {np.median(error):.3f}   p90 {np.percentile(error, 90):.3f}"
          f"   max {error.max():.3f}")

    folder = deepscm_dir()
    if args.deepscm and (folder / "t10k-morpho.csv").exists():
        k = args.deepscm
        images = read_idx(folder / "t10k-images-idx3-ubyte.gz")[:k]
        labels = pd.read_csv(folder / "t10k-morpho.csv")[:k]
        fidelity = morphometry.measure_dataset_fidelity(images, labels["thickness"],
                                                        labels["intensity"])
        print(f"--- Deep SCM labels vs our morphometry, {k} t10k images")
        for name, unit in (("thickness", "px"), ("intensity", "grey levels")):
            print(f"{name:<10} MAE {fidelity[name + '_mae']:.3f} {unit}, "
                  f"bias {fidelity[name + '_bias']:+.3f}, r {fidelity[name + '_r']:.4f}")
    else:
        print(f"--- Deep SCM set not found in {folder} (set CDAE_DEEPSCM_DIR); fidelity skipped")


if __name__ == "__main__":
    main()
