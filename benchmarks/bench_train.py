"""Training images/s and DDIM ms/step of the small and paper configs on this machine.

    OMP_NUM_THREADS=2 python benchmarks/bench_train.py --steps 5 --warmup 2
    python benchmarks/bench_train.py --device cuda --compile --amp bf16

Data are random images and labels of each config's shape (no dataset needed), run through the
real training step (forward, backward, gradient clipping, AdamW, EMA). ``--channels-last both``
times the two memory layouts side by side.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cdae.config import ExperimentConfig, load_config
from cdae.data.datasets import CausalImageDataset
from cdae.graph import PRESETS, CausalGraph
from cdae.paths import repo_root
from cdae.train import Trainer
from cdae.train.build import config_graph

DEFAULT_CONFIGS = ("morphomnist_small", "morphomnist_paper", "pendulum_small", "pendulum_paper")


def synthetic_dataset(config: ExperimentConfig, n: int) -> CausalImageDataset:
    """``n`` random images of the model's shape with labels for the config's graph."""
    preset = config.data.name.replace("deepscm_", "")
    graph = config_graph(config) or CausalGraph.preset(preset if preset in PRESETS
                                                       else "morphomnist")
    c, h, w = config.model.image_shape
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, h, w, c), dtype=np.uint8)
    labels = pd.DataFrame({
        name: rng.integers(0, graph.categorical[name], n) if graph.is_categorical(name)
        else rng.normal(size=n) for name in graph.nodes
    })
    return CausalImageDataset(images, labels, graph)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_training(config: ExperimentConfig, args: argparse.Namespace,
                  channels_last: bool) -> tuple[float, Trainer]:
    """Images per second of ``args.steps`` training steps after ``args.warmup`` warm-up steps."""
    batch = args.batch or config.train.batch_size
    config = config.replace_train(
        batch_size=batch, steps=args.warmup + args.steps, compile=args.compile, amp=args.amp,
        channels_last=channels_last, threads=args.threads, device=args.device, accumulate=1)
    dataset = synthetic_dataset(config, n=batch * (args.warmup + args.steps))
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(config, Path(out), dataset=dataset, progress=False)
        steps = iter(trainer.batches(0, args.warmup + args.steps))
        for _ in range(args.warmup):
            trainer.train_step(next(steps))
        sync(trainer.runtime.device)
        start = time.perf_counter()
        for micro_batches in steps:
            trainer.train_step(micro_batches)
        sync(trainer.runtime.device)
    return args.steps * batch / (time.perf_counter() - start), trainer


@torch.no_grad()
def time_ddim(trainer: Trainer, batch: int, steps: int) -> float:
    """Milliseconds per DDIM step (one network call) of the EMA model at ``batch``."""
    model, device = trainer.ema.shadow, trainer.runtime.device
    shape = (batch, *trainer.model_config.image_shape)
    x_t = torch.randn(shape, device=device)
    if trainer.runtime.channels_last:
        x_t = x_t.contiguous(memory_format=torch.channels_last)
    z = model.null_token.expand(batch, -1)
    with trainer.runtime.autocast():
        def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return model.eps(x, t, z)

        trainer.diffusion.ddim_sample(eps_fn, x_t, steps=2)  # warm-up
        sync(device)
        start = time.perf_counter()
        trainer.diffusion.ddim_sample(eps_fn, x_t, steps=steps)
        sync(device)
    return 1000 * (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS),
                        help="config names under configs/ or YAML paths")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--batch", type=int, default=None, help="override train.batch_size")
    parser.add_argument("--ddim-steps", type=int, default=10)
    parser.add_argument("--compile", action="store_true", help="torch.compile the networks")
    parser.add_argument("--amp", default="auto", choices=["auto", "bf16", "off"])
    parser.add_argument("--channels-last", default="auto", choices=["auto", "on", "off", "both"])
    parser.add_argument("--threads", type=int, default=0, help="0: OMP_NUM_THREADS or all cores")
    args = parser.parse_args()

    layouts = {"auto": [None], "on": [True], "off": [False], "both": [False, True]}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
          f"compile={args.compile}, amp={args.amp}")
    print(f"{'config':<20} {'layout':<14} {'batch':>5} {'train img/s':>12} "
          f"{'DDIM ms/step b=1':>17} {'b=16':>8}")
    for name in args.configs:
        path = Path(name) if name.endswith(".yaml") else repo_root() / "configs" / f"{name}.yaml"
        config = load_config(path)
        for channels_last in layouts[args.channels_last]:
            images_per_s, trainer = time_training(config, args, channels_last)
            ms = [time_ddim(trainer, b, args.ddim_steps) for b in (1, 16)]
            layout = "channels_last" if trainer.runtime.channels_last else "contiguous"
            batch = args.batch or config.train.batch_size
            print(f"{config.name:<20} {layout:<14} {batch:>5} {images_per_s:>12.1f} "
                  f"{ms[0]:>17.1f} {ms[1]:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
