"""Which objective makes the Morpho-MNIST latents informative: the ablation of the README's
"Informative latents" section.

Each checkpoint was trained with the same data, sizes, budget and seed as
``configs/morphomnist_small.yaml``, changing only the objective's knobs
(``configs/ablations/*.yaml``):

    for c in shrink kl_mean sharp_prior; do
        python -m cdae train configs/ablations/morphomnist_$c.yaml
    done
    python benchmarks/latent_ablation.py data/pretrained/morphomnist_small.pt \\
        runs/morphomnist_{shrink,kl_mean,sharp_prior}/last.pt

For each: the signal-to-noise of every latent block on 512 test images
(:func:`cdae.latents.block_signal_to_noise`), then ``evaluate`` restricted to do(thickness) and
do(intensity) with the effectiveness and true-counterfactual tables (n=256, 50 DDIM steps,
benchmark protocol), read by morphometry. The three numbers to read together: the intensity
MAE under do(intensity), the thickness it moves, and the propagated-intensity error under
do(thickness). Reports are written to ``--out`` (one JSON per checkpoint); markdown is printed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
from checkpoint_reports import checkpoint_args, reports, run_name
from quality_table import markdown, metric_column, read_report

from cdae.checkpoint import load_model
from cdae.counterfactual import CounterfactualModel
from cdae.data.datasets import build_dataset
from cdae.evaluate.report import EvaluationConfig, evaluate_model
from cdae.latents import block_signal_to_noise

ROWS = ("do(intensity): intensity (oracle)", "do(intensity): thickness (oracle)",
        "do(thickness): thickness (oracle)", "do(thickness): intensity (oracle)",
        "do(thickness): digit (predictor)", "do(thickness): L1 to the true counterfactual",
        "do(intensity): L1 to the true counterfactual")


def evaluate_one(path: Path, out: Path, n: int, steps: int) -> Path:
    loaded = load_model(path)
    cf = CounterfactualModel(loaded.model, loaded.diffusion, loaded.normalizer)
    data = loaded.config.data
    test = build_dataset(data.name, "test", root=data.root, normalizer=cf.normalizer,
                         **dict(data.options or {}))
    snr = block_signal_to_noise(cf, test, n=512)
    started = time.perf_counter()
    report = evaluate_model(
        cf, data.name, data.root,
        EvaluationConfig(n=n, steps=steps, variables=("thickness", "intensity"),
                         tables=("effectiveness", "true_error")),
        dataset_options=data.options, meta={"checkpoint": str(path)})
    report.meta["block_snr"] = dict(zip(snr["variable"], snr["snr"], strict=True))
    report.meta["posterior_sd"] = dict(zip(snr["variable"], snr["posterior_sd"], strict=True))
    report.meta["knobs"] = {k: getattr(loaded.config.model, k) for k in (
        "label_prior_variance", "mechanism_weight", "decoder_variance_scale", "kl_reduction")}
    target = out / f"ablation_{run_name(path)}.json"
    report.to_json(target)
    print(f"{path}: {time.perf_counter() - started:.0f} s -> {target}", flush=True)
    return target


def ablation_markdown(reports: list[Path]) -> str:
    columns = {}
    for path in reports:
        meta, tables = read_report(path)
        name = path.stem.removeprefix("ablation_")
        knobs = meta["knobs"]
        metrics = metric_column(tables).reindex(list(ROWS))
        shrink = knobs["decoder_variance_scale"] ** 0.5  # what the decoder is fed: sqrt(s)·sigma
        extra = {f"block snr ({v}), as the decoder sees it": snr / shrink
                 for v, snr in meta["block_snr"].items()}
        extra["knobs (v, lambda, s, KL)"] = (
            f"{knobs['label_prior_variance']:g}, {knobs['mechanism_weight']:g}, "
            f"{knobs['decoder_variance_scale']:g}, {knobs['kl_reduction']}")
        columns[name] = pd.concat([pd.Series(extra, dtype=object), metrics.astype(object)])
    frame = pd.DataFrame(columns)
    cells = frame.map(lambda v: f"{v:.3g}" if isinstance(v, float) else str(v))
    return markdown(cells.rename_axis("metric"))


def main() -> None:
    args = checkpoint_args(__doc__.splitlines()[0])
    print(ablation_markdown(reports(args, "ablation", evaluate_one)))
    print("\n" + json.dumps({"n": args.n, "steps": args.steps, "protocol": "benchmark"}))


if __name__ == "__main__":
    main()
