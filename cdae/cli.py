"""Command line: ``python -m cdae <command> ...`` (also installed as ``cdae``).

Commands import their module lazily, so ``python -m cdae --help`` is instant.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

#: Exit status after Ctrl-C (128 + SIGINT, the shell's convention).
INTERRUPTED = 130


def _cmd_data_mnist(args: argparse.Namespace) -> int:
    from cdae.data.mnist import download_mnist

    for path in download_mnist(args.out):
        print(path)
    return 0


def _cmd_data_deepscm(args: argparse.Namespace) -> int:
    from cdae.data.deepscm import download_deepscm

    for path in download_deepscm(args.out, splits=tuple(args.splits)):
        print(path)
    return 0


def _cmd_data_morphomnist(args: argparse.Namespace) -> int:
    from cdae.data.morphomnist import generate_dataset

    generate_dataset(
        args.out, mnist_dir=args.mnist_dir, limit=args.limit, seed=args.seed,
        draws_per_digit=args.draws_per_digit, workers=args.workers, overwrite=args.overwrite,
    )
    return 0


def _cmd_data_pendulum(args: argparse.Namespace) -> int:
    from cdae.data.pendulum import write_dataset

    write_dataset(args.out, seed=args.seed, limit=args.limit, overwrite=args.overwrite,
                  shadow_noise_sd=args.shadow_noise_sd)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from cdae.train import TrainingDiverged, TrainingInterrupted, train_from_config

    try:
        checkpoint = train_from_config(args.config, steps=args.steps, out=args.out,
                                       resume=args.resume, device=args.device)
    except TrainingDiverged as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except TrainingInterrupted as exc:
        if os.environ.get("RANK", "0") == "0":
            print(str(exc), file=sys.stderr)
        return INTERRUPTED
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
        print(f"checkpoint: {checkpoint}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from cdae.evaluate.report import evaluate_cli

    return evaluate_cli(args.checkpoint, data=args.data, json_out=args.json_out, n=args.n,
                        steps=args.steps, protocol=args.protocol, device=args.device,
                        tables_wanted=args.tables, guidance=args.guidance)


def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _cmd_export(args: argparse.Namespace) -> int:
    from cdae.pretrained import export_checkpoint

    entry = export_checkpoint(args.checkpoint, args.out, command=args.command, notes=args.notes,
                              force=args.force)
    print(f"{args.out}: {entry['bytes'] / 1e6:.1f} MB, sha256 {entry['sha256']}")
    return 0


def _cmd_quickstart(args: argparse.Namespace) -> int:
    from cdae.quickstart import run_quickstart

    return run_quickstart(smoke=args.smoke)


def _cmd_figures(args: argparse.Namespace) -> int:
    from cdae.paths import smoke_mode
    from cdae.reproduce import ReproductionSettings, reproduce

    smoke = args.smoke or smoke_mode()
    if args.notebooks:  # the course's figures first; notebook 12 is the reproduction below
        from cdae.quickstart import course_notebooks, run_notebooks

        names = [name for name in course_notebooks() if not name.startswith("12_")]
        if run_notebooks(names, smoke) != 0:
            return 1
    settings = ReproductionSettings.smoke() if smoke else ReproductionSettings.full()
    print(f"reproducing the paper's figures and tables ({'smoke' if smoke else 'full'} mode)",
          flush=True)
    reproduce(settings)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from cdae.paths import data_dir

    parser = argparse.ArgumentParser(prog="cdae", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="download or generate a dataset")
    datasets = data.add_subparsers(dest="dataset", required=True)

    mnist = datasets.add_parser("mnist", help="download MNIST (md5-checked; needs internet)")
    mnist.add_argument("--out", type=Path, default=data_dir() / "mnist")
    mnist.set_defaults(func=_cmd_data_mnist)

    deepscm = datasets.add_parser(
        "deepscm", help="download the Deep SCM Morpho-MNIST set (md5-checked; needs internet)")
    deepscm.add_argument("--out", type=Path, default=None,
                         help="target folder (default: CDAE_DEEPSCM_DIR, data/deepscm-morphomnist)")
    deepscm.add_argument("--splits", nargs="+", choices=("train", "test"),
                         default=["train", "test"])
    deepscm.set_defaults(func=_cmd_data_deepscm)

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
    morpho.add_argument("--overwrite", action="store_true",
                        help="replace an existing Morpho-MNIST dataset in --out")
    morpho.set_defaults(func=_cmd_data_morphomnist)

    pendulum = datasets.add_parser("pendulum", help="render the CausalVAE Pendulum dataset")
    pendulum.add_argument("--out", type=Path, default=data_dir() / "pendulum")
    pendulum.add_argument("--seed", type=int, default=0, help="seed of the train/test split")
    pendulum.add_argument("--limit", type=int, default=None,
                          help="write only this many images of the grid (for quick tries)")
    pendulum.add_argument("--overwrite", action="store_true",
                          help="replace an existing Pendulum dataset in --out")
    pendulum.add_argument("--shadow-noise-sd", type=float, default=0.0,
                          help="exogenous noise sd of both shadows, scene units (default 0: "
                               "CausalVAE's scenes, shadows exact functions of the angles)")
    pendulum.set_defaults(func=_cmd_data_pendulum)

    train = commands.add_parser("train", help="train a model from a YAML config")
    train.add_argument("config", type=Path, help="e.g. configs/morphomnist_small.yaml")
    train.add_argument("--steps", type=int, default=None, help="override train.steps")
    train.add_argument("--out", type=Path, default=None,
                       help="run folder (default: runs/<config name>)")
    train.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    train.add_argument("--device", default=None, help="cuda, mps, cpu (default: config, auto)")
    train.set_defaults(func=_cmd_train)

    evaluate = commands.add_parser(
        "evaluate", help="score a checkpoint's counterfactuals on its dataset's test split")
    evaluate.add_argument("checkpoint", type=Path)
    evaluate.add_argument("--data", type=Path, default=None,
                          help="dataset folder (default: the config's, generated if needed)")
    evaluate.add_argument("--json", dest="json_out", type=Path, default=None,
                          help="also write every table to this JSON file")
    evaluate.add_argument("--n", type=int, default=None,
                          help="test images (default 256; 16 in smoke mode)")
    evaluate.add_argument("--steps", type=int, default=50, help="DDIM steps")
    evaluate.add_argument("--protocol", choices=["benchmark", "random", "fixed"],
                          default="benchmark", help="how intervention values are chosen")
    evaluate.add_argument("--guidance", type=float, default=None,
                          help="classifier-free guidance weight w of every counterfactual "
                          "(default: none, plain conditional decoding)")
    evaluate.add_argument("--device", default=None)
    evaluate.add_argument("--tables", type=_comma_list, default=None,
                          help="comma-separated tables to compute, e.g. effectiveness,true_error "
                          "(default: all; names in cdae.evaluate.tables.TABLES)")
    evaluate.set_defaults(func=_cmd_evaluate)

    export = commands.add_parser(
        "export", help="shrink a training checkpoint to its EMA weights for shipping")
    export.add_argument("checkpoint", type=Path)
    export.add_argument("out", type=Path, help="e.g. data/pretrained/morphomnist_small.pt")
    export.add_argument("--command", default=None, help="the command that trained it")
    export.add_argument("--notes", default=None, help="what it was trained on, hardware, ...")
    export.add_argument("--force", action="store_true",
                        help="replace an existing output file (never the input checkpoint)")
    export.set_defaults(func=_cmd_export)

    quick = commands.add_parser("quickstart", help="run the main job and write its figures")
    quick.add_argument("--smoke", action="store_true", help="small, fast version (as in CI)")
    quick.set_defaults(func=_cmd_quickstart)

    figures = commands.add_parser(
        "figures", help="regenerate the paper's figures and tables from the shipped models")
    figures.add_argument("--smoke", action="store_true",
                         help="every loop small, as in CI (also when CDAE_SMOKE or CI is set)")
    figures.add_argument("--notebooks", action="store_true",
                         help="first run every course notebook (full mode unless --smoke), "
                         "which writes the course's figures")
    figures.set_defaults(func=_cmd_figures)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (OSError, ValueError) as exc:
        print(f"error: {_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C while training, or one in any other command
        print("interrupted (Ctrl-C); stopped at once, without saving", file=sys.stderr)
        return INTERRUPTED


def _message(exc: Exception) -> str:
    """The text of an error; an ``OSError(errno, message)`` without its "[Errno N]" prefix."""
    if isinstance(exc, OSError) and exc.filename is None and len(exc.args) == 2:
        return str(exc.strerror)
    return str(exc)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
