"""Command line: ``python -m cdae <command> ...`` (also installed as ``cdae``).

Commands import their module lazily, so ``python -m cdae --help`` is instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def _cmd_data_mnist(args: argparse.Namespace) -> int:
    from cdae.data.mnist import download_mnist

    for path in download_mnist(args.out):
        print(path)
    return 0


def _cmd_data_morphomnist(args: argparse.Namespace) -> int:
    from cdae.data.morphomnist import generate_dataset

    generate_dataset(
        args.out, mnist_dir=args.mnist_dir, limit=args.limit, seed=args.seed,
        draws_per_digit=args.draws_per_digit, workers=args.workers,
    )
    return 0


def _cmd_data_pendulum(args: argparse.Namespace) -> int:
    from cdae.data.pendulum import write_dataset

    write_dataset(args.out, seed=args.seed)
    return 0


def _cmd_quickstart(args: argparse.Namespace) -> int:
    from cdae.quickstart import run_quickstart

    return run_quickstart(smoke=args.smoke)


def build_parser() -> argparse.ArgumentParser:
    from cdae.paths import data_dir

    parser = argparse.ArgumentParser(prog="cdae", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="download or generate a dataset")
    datasets = data.add_subparsers(dest="dataset", required=True)

    mnist = datasets.add_parser("mnist", help="download MNIST (md5-checked; needs internet)")
    mnist.add_argument("--out", type=Path, default=data_dir() / "mnist")
    mnist.set_defaults(func=_cmd_data_mnist)

    morpho = datasets.add_parser(
        "morphomnist", help="generate Causal Morpho-MNIST in the Deep SCM file layout"
    )
    morpho.add_argument("--out", type=Path, default=data_dir() / "morphomnist")
    morpho.add_argument("--mnist-dir", type=Path, default=None,
                        help="folder with MNIST IDX files (default: CDAE_MNIST_DIR, data/mnist)")
    morpho.add_argument("--limit", type=int, default=None,
                        help="use at most this many base digits per split")
    morpho.add_argument("--seed", type=int, default=0)
    morpho.add_argument("--draws-per-digit", type=int, default=1,
                        help="attribute draws (images) per base digit")
    morpho.add_argument("--workers", type=int, default=None,
                        help="processes for generation (default: all cores)")
    morpho.set_defaults(func=_cmd_data_morphomnist)

    pendulum = datasets.add_parser("pendulum", help="render the CausalVAE Pendulum dataset")
    pendulum.add_argument("--out", type=Path, default=data_dir() / "pendulum")
    pendulum.add_argument("--seed", type=int, default=0, help="seed of the train/test split")
    pendulum.set_defaults(func=_cmd_data_pendulum)

    quick = commands.add_parser("quickstart", help="run the main job and write its figures")
    quick.add_argument("--smoke", action="store_true", help="small, fast version (as in CI)")
    quick.set_defaults(func=_cmd_quickstart)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
