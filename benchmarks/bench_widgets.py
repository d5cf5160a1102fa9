"""What one explorer update costs, and what fewer DDIM steps cost in quality.

    OMP_NUM_THREADS=1 python benchmarks/bench_widgets.py                    # shipped model
    python benchmarks/bench_widgets.py --model morphomnist_small --n 32 --threads 1 2

Quality: the do() counterfactuals of ``n`` test images (values by the benchmark protocol, one
intervened variable at a time), measured by the dataset's oracle, as the mean absolute error to
the true counterfactual's labels, at each DDIM step count; once with inversion and decoding at
the same steps (what the explorer does), once decoding from a 50-step inversion.
Latency: :meth:`cdae.widgets.ExplorerSession.update` on one image with the abduction cached (a
slider move: action, DDIM decode, oracle measurement), median of ``--repeats`` values, and the
first update of an image (abduction included), per thread count.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

from cdae.data.datasets import build_dataset
from cdae.evaluate import parts
from cdae.evaluate.protocol import DEFAULT_BINS
from cdae.pretrained import load_pretrained, read_manifest
from cdae.widgets import ExplorerSession, default_reader

REFERENCE_STEPS = 50


def quality(cf, setup, steps_list, inversion_steps=None) -> pd.DataFrame:
    """Oracle MAE per (steps, intervened, measured variable); inversion at ``inversion_steps``
    (None: the same steps as decoding)."""
    rows = []
    continuous = [v for v in cf.graph.nodes if v in setup.oracle.measured]
    for name in continuous:
        asked = parts.intervention_values(setup, "benchmark", name, DEFAULT_BINS, 0)
        values, _ = parts.clip_to_model(cf, name, asked)
        targets, _ = parts.targets_and_truth(setup, name, values, [])
        kept = {}
        for steps in steps_list:
            k_inv = inversion_steps or steps
            if k_inv not in kept:
                kept[k_inv] = cf.abduct(setup.x, k_inv)
            with torch.inference_mode():
                images = cf.predict(kept[k_inv], {name: values}, steps=steps).images
            table = parts.scored(setup.oracle.measure(parts.to_storage(images)), targets, name,
                                 cf.graph)
            for _, row in table.iterrows():
                rows.append({"steps": steps, "intervened": name, "measured": row["variable"],
                             "mae": row["value"], "blank": row["unmeasured"] / len(setup.x)})
    return pd.DataFrame(rows)


def latency(session, steps_list, repeats, index=0) -> pd.DataFrame:
    """Seconds of the first update of an image and median seconds of a cached one."""
    name = next(v for v in session.graph.nodes if not session.graph.is_categorical(v))
    low, high = session.ranges[name]
    rows = []
    for steps in steps_list:
        session.clear_cache()
        first = session.update(index, {name: low}, steps).seconds["total"]
        cached = [session.update(index, {name: v}, steps).seconds
                  for v in np.linspace(low, high, repeats)]
        rows.append({"steps": steps, "threads": torch.get_num_threads(),
                     "first_update_s": first,
                     "update_s": float(np.median([s["total"] for s in cached])),
                     "decode_s": float(np.median([s["decode"] for s in cached])),
                     "measure_s": float(np.median([s["measure"] for s in cached]))})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="morphomnist_small", help="a shipped checkpoint")
    parser.add_argument("--data", default=None, help="dataset folder (default: its cache)")
    parser.add_argument("--n", type=int, default=32, help="test images for the quality curve")
    parser.add_argument("--steps", type=int, nargs="+", default=[5, 10, 20, 25, 30, 50])
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    cf = load_pretrained(args.model)
    dataset = read_manifest()[f"{args.model}.pt"]["dataset"]["name"]
    if args.data is None and dataset == "morphomnist":
        from cdae.data.morphomnist import tutorial_root

        args.data = str(tutorial_root())
    params = sum(p.numel() for p in cf.model.parameters())
    print(f"model {args.model} ({params / 1e6:.2f} M parameters), dataset {dataset} "
          f"({args.data or 'default folder'}), {args.n} test images")

    torch.set_num_threads(min(args.threads))
    setup = parts.prepare(cf, dataset, args.data, args.n, 0, None, steps=0,
                          abduction="inversion", guidance=None, batch_size=args.n,
                          progress=False)
    same = quality(cf, setup, args.steps).assign(inversion="same steps")
    fixed = quality(cf, setup, args.steps, REFERENCE_STEPS).assign(
        inversion=f"{REFERENCE_STEPS} steps")
    table = pd.concat([same, fixed]).pivot_table(index=["inversion", "intervened", "measured"],
                                                 columns="steps", values="mae")
    reference = table[REFERENCE_STEPS].xs("same steps", level="inversion")
    print("\noracle MAE to the true counterfactual (natural units) by DDIM steps:")
    print(table.round(3).to_string())
    print(f"\nrelative to inversion and decoding at {REFERENCE_STEPS} steps (1.00 = as good):")
    relative = table.div(reference.reindex(table.index.droplevel("inversion")).to_numpy(), axis=0)
    print(relative.round(2).to_string())
    blank = pd.concat([same, fixed]).pivot_table(index=["inversion", "intervened"],
                                                 columns="steps", values="blank")
    print("\nshare of counterfactuals the oracle cannot measure (blank, no stroke; left out of "
          "the MAE above):")
    print(blank.round(2).to_string())

    test = build_dataset(dataset, "test", root=args.data, normalizer=cf.normalizer)
    session = ExplorerSession(cf, test, default_reader(dataset, args.data))
    print(f"\none explorer update, one image ({read_manifest()[f'{args.model}.pt']['step']}-step "
          "checkpoint; seconds):")
    frames = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        frames.append(latency(session, args.steps, args.repeats))
    print(pd.concat(frames).round(3).to_string(index=False))


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"\n(benchmark ran {time.perf_counter() - started:.0f} s)")
