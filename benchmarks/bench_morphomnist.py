"""Benchmark Causal Morpho-MNIST: generation speed, and fidelity beside the Deep SCM set.

    OMP_NUM_THREADS=1 python benchmarks/bench_morphomnist.py [--images 10000] [--workers 2]

Prints (1) seconds and images/s to generate ``--images`` images (half train, half test) with
``--workers`` processes, end to end (loading digits, rendering, writing, manifest); (2) the label
marginals and thickness-intensity correlation of our set beside the Deep SCM CSV; (3) the
morphometry of ``--measure`` images of each set against its own labels (MAE in pixels and grey
levels), on the same base digits, so our generator is judged by the same ruler as Deep
SCM's.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

from cdae.data import morphomnist as mm
from cdae.paths import deepscm_dir


def time_generation(images: int, workers: int, out: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process and its workers) to generate ``images``
    images (``images // 2`` base digits per split)."""
    before, start = os.times(), time.perf_counter()
    mm.generate_dataset(out, limit=images // 2, workers=workers, progress=False)
    after = os.times()
    cpu = sum(after[:4]) - sum(before[:4])  # user + system, self + reaped children
    return time.perf_counter() - start, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--measure", type=int, default=2_000,
                        help="images of each set measured for the fidelity table")
    args = parser.parse_args()
    pd.set_option("display.width", 120)

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "morphomnist"
        seconds, cpu = time_generation(args.images, args.workers, out)
        print(f"generation: {args.images} images with {args.workers} workers in {seconds:.1f} s "
              f"= {args.images / seconds:.0f} images/s (CPU {cpu:.1f} s = "
              f"{1000 * cpu / args.images:.1f} ms per image; wall time on idle cores ~ CPU / "
              f"workers; load average now {os.getloadavg()[0]:.1f})")
        ours = mm.read_morphomnist(out, "test")
        ours_train = mm.read_morphomnist(out, "train")
        deep = mm.read_morphomnist(deepscm_dir(), "test")

        summary = pd.DataFrame({
            "ours (train)": mm.attribute_summary(ours_train.labels),
            "ours (test)": mm.attribute_summary(ours.labels),
            "Deep SCM (t10k)": mm.attribute_summary(deep.labels),
        })
        print("\nlabel marginals and correlation\n" + summary.round(3).to_string())

        m = min(args.measure, len(ours))
        same = ours.labels["base_index"].to_numpy()[:m]  # Deep SCM image i is MNIST test digit i
        start = time.perf_counter()
        table = pd.concat({
            "ours": mm.fidelity_table(ours.images[:m], ours.labels.iloc[:m]),
            "Deep SCM": mm.fidelity_table(deep.images[same], deep.labels.iloc[same]),
        })
        print(f"\nmorphometry vs labels on {m} test images of each set, same base digits "
              f"(measured in {time.perf_counter() - start:.1f} s)\n" + table.round(3).to_string())


if __name__ == "__main__":
    main()
