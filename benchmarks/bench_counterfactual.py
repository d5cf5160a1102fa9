"""Seconds per counterfactual versus DDIM steps, for batches of 1 and 16 images.

    OMP_NUM_THREADS=2 python benchmarks/bench_counterfactual.py runs/morphomnist_small/last.pt
    python benchmarks/bench_counterfactual.py --config configs/morphomnist_small.yaml
    python benchmarks/bench_counterfactual.py CKPT --steps 10 50 --batch 1 16 --quality

One counterfactual = abduction (encoder + DDIM inversion over ``steps``) + action + DDIM
decoding over ``steps``, i.e. 2 * steps UNet evaluations. Timing does not depend on the
weights, so without a checkpoint the config's model is timed untrained, on random images.
``--quality`` adds :func:`cdae.evaluate.report.speed_quality` on real test images of the
checkpoint's dataset (oracle MAE of the intervened variable, L1 to the true counterfactual).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

from cdae.checkpoint import load_model
from cdae.config import load_config
from cdae.counterfactual import CounterfactualModel
from cdae.data.labels import LabelNormalizer
from cdae.graph import CausalGraph
from cdae.models import build_model_and_diffusion
from cdae.train.build import config_graph


def untrained(config_path: str, device: str) -> CounterfactualModel:
    """The config's model with fresh weights and an identity label normaliser."""
    config = load_config(config_path)
    graph = config_graph(config) or CausalGraph.preset(config.data.name.replace("deepscm_", ""))
    model, diffusion = build_model_and_diffusion(graph, config.model, config.model_kind)
    shift, scale = np.zeros(len(graph.nodes)), np.ones(len(graph.nodes))
    normalizer = LabelNormalizer(graph.nodes, shift, scale, dict(graph.categorical))
    return CounterfactualModel(model.to(device).eval(), diffusion.to(device), normalizer)


def intervention(cf: CounterfactualModel, batch: int) -> dict[str, torch.Tensor]:
    """do() on the graph's first continuous variable, at its training mean + 1 sd."""
    name = next(v for v in cf.graph.nodes if not cf.graph.is_categorical(v))
    return {name: torch.full((batch,), float(cf.normalizer.denormalize_value(name, 1.0)))}


def time_counterfactual(cf: CounterfactualModel, steps: int, batch: int, repeats: int) -> float:
    """Best wall-clock seconds of ``repeats`` counterfactual calls on a batch of random images."""
    x = torch.rand((batch, *cf.model.config.image_shape), device=cf.device) * 2 - 1
    do = intervention(cf, batch)
    cf.counterfactual(x, do, steps=2)  # warm-up: allocations, kernels
    best = float("inf")
    for _ in range(repeats):
        if cf.device.type == "cuda":
            torch.cuda.synchronize(cf.device)
        started = time.perf_counter()
        cf.counterfactual(x, do, steps=steps)
        if cf.device.type == "cuda":
            torch.cuda.synchronize(cf.device)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", nargs="?", default=None)
    parser.add_argument("--config", default="configs/morphomnist_small.yaml",
                        help="model to time untrained when no checkpoint is given")
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 20, 50, 100, 250])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quality", action="store_true",
                        help="also run speed_quality on 16 real test images (needs a checkpoint)")
    args = parser.parse_args()

    if args.checkpoint:
        loaded = load_model(args.checkpoint, device=args.device)
        cf = CounterfactualModel(loaded.model, loaded.diffusion, loaded.normalizer)
    else:
        cf = untrained(args.config, args.device)
    source = args.checkpoint or f"{args.config} (untrained)"
    print(f"{source} on {args.device}, torch threads {torch.get_num_threads()}")
    rows = []
    for batch in args.batch:
        for steps in args.steps:
            seconds = time_counterfactual(cf, steps, batch, args.repeats)
            rows.append({"batch": batch, "steps": steps, "s_per_batch": seconds,
                         "s_per_image": seconds / batch, "images_per_s": batch / seconds})
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if args.quality and args.checkpoint:
        from cdae.evaluate.report import speed_quality

        table = speed_quality(cf, loaded.config.data.name, args.steps,
                              loaded.config.data.root, dataset_options=loaded.config.data.options)
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
