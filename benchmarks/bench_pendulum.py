"""Benchmark the Pendulum renderer: images/s, dataset write/read time, oracle accuracy.

    OMP_NUM_THREADS=1 python benchmarks/bench_pendulum.py [--images 2000] [--write 7308]

Prints (1) rendering speed of ``--images`` random grid scenes (images/s, single process);
(2) seconds to write ``--write`` images as a dataset (render, PNG, labels, manifest) and to read
it back; (3) the label ranges of the full grid; (4) how well :func:`measure` reads the labels back
from the rendered images (MAE and max error per variable, clipped shadows excluded).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cdae.data import pendulum as pend


class Clock:
    """Wall and CPU seconds of a block (CPU time is robust to other users of a shared machine)."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu

    def rate(self, n: int) -> str:
        return (f"{self.wall:.1f} s wall = {n / self.wall:.0f} images/s "
                f"({n / self.cpu:.0f} per CPU second)")


def oracle_errors(images: np.ndarray, table: pd.DataFrame) -> pd.DataFrame:
    measured = pend.measure(images)
    rows = {}
    for name in pend.VARIABLES:
        keep = ~measured.shadow_clipped if name.startswith("shadow") else measured.index >= 0
        error = (measured[name] - table[name].to_numpy())[keep].abs()
        rows[name] = {"MAE": error.mean(), "max": error.max(), "n": int(keep.sum())}
    return pd.DataFrame(rows).T


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2_000, help="scenes to render")
    parser.add_argument("--write", type=int, default=pend.N_IMAGES, help="dataset size to write")
    args = parser.parse_args()

    grid = pend.grid()
    table = grid.sample(args.images, replace=args.images > len(grid), random_state=0)
    with Clock() as clock:
        images = pend.render_batch(table.pendulum_angle.to_numpy(), table.light_angle.to_numpy())
    print(f"render_batch: {args.images} images in {clock.rate(args.images)}")

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "pendulum"
        with Clock() as clock:
            pend.write_dataset(out, limit=None if args.write >= len(grid) else args.write,
                               progress=False)
        print(f"write_dataset: {args.write} images in {clock.rate(args.write)}")
        with Clock() as clock:
            for split in pend.SPLITS:
                pend.read_pendulum(out, split)
        print(f"read_pendulum (both splits): {clock.rate(args.write)}")

    ranges = pd.DataFrame(pend.label_ranges(), index=["min", "max"]).T
    ranges["at floor 3"] = ["", "", int((grid.shadow_length == 3).sum()), ""]
    print("\nlabel ranges over the 7,308 grid points\n" + ranges.round(3).to_string())

    with Clock() as clock:
        errors = oracle_errors(images, table)
    print(f"\nmeasure(): {clock.rate(args.images)}; error against the labels\n"
          + errors.round(3).to_string())


if __name__ == "__main__":
    main()
