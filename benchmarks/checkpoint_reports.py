"""What the benchmarks that score several checkpoints share: their command line, and the loop
that evaluates each checkpoint once (or reuses its report with ``--reuse``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import torch


def run_name(path: Path) -> str:
    """runs/<name>/last.pt -> <name>; data/pretrained/<name>.pt -> <name>."""
    return path.parent.name if path.name == "last.pt" else path.stem


def checkpoint_args(description: str) -> argparse.Namespace:
    """Parse ``CHECKPOINTS... [--out DIR] [--n N] [--steps S] [--reuse] [--threads T]``, set the
    torch threads and create ``--out``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("runs/eval"))
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--reuse", action="store_true",
                        help="read reports already in --out instead of evaluating again")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def reports(args: argparse.Namespace, prefix: str,
            evaluate_one: Callable[[Path, Path, int, int], Path]) -> list[Path]:
    """The report of each checkpoint, ``<out>/<prefix>_<run name>.json``: evaluated with
    ``evaluate_one(checkpoint, out, n, steps)`` unless ``--reuse`` finds it."""
    found = []
    for path in args.checkpoints:
        done = args.out / f"{prefix}_{run_name(path)}.json"
        found.append(done if args.reuse and done.exists()
                     else evaluate_one(path, args.out, args.n, args.steps))
    return found
