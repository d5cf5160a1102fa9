"""A comparison table of evaluated checkpoints, from the JSON reports of ``python -m cdae
evaluate`` (one column per report, one row per metric; ``floor`` is the readers on real images,
``unchanged`` the error of returning the input):

    for m in morphomnist_small morphomnist_small_diffae morphomnist_small_label_ddim; do
        python -m cdae evaluate data/pretrained/$m.pt --n 256 --steps 50 --json runs/eval/$m.json
    done
    python benchmarks/quality_table.py runs/eval/morphomnist_small*.json

``python -m cdae figures`` builds the same table for the shipped models directly
(:func:`cdae.reproduce.comparison_table`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cdae.evaluate import EvaluationReport
from cdae.reproduce import comparison_table, to_markdown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path, help="JSON reports of cdae evaluate")
    args = parser.parse_args()
    reports = {path.stem: EvaluationReport.from_json(path) for path in args.reports}
    print(to_markdown(comparison_table(reports)))


if __name__ == "__main__":
    main()
