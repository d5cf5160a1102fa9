"""The main job: execute the tutorial notebooks in order, which writes every figure to ``figures/``.

Each notebook loads what exists (datasets, checkpoints) and otherwise generates or trains it, so
the first run takes longer than later ones. Executed copies are saved under ``runs/notebooks/``
for reading; the notebooks in ``notebooks/`` stay stripped.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from cdae.paths import figures_dir, repo_root

#: Notebooks the main job runs, in order: the quickstart on the shipped model, then every
#: tutorial that does not train (04 trains unless its run folder already holds a checkpoint).
QUICKSTART_NOTEBOOKS = (
    "00_quickstart.ipynb",
    "01_data_morphomnist.ipynb",
    "02_data_pendulum.ipynb",
    "03_diffusion_basics.ipynb",
)


def run_notebook(path: Path, out_dir: Path, smoke: bool, timeout_s: int = 3600) -> Path:
    """Execute one notebook top to bottom in its own folder; save the executed copy."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    env_backup = os.environ.get("CDAE_SMOKE")
    os.environ["CDAE_SMOKE"] = "1" if smoke else "0"
    try:
        NotebookClient(notebook, timeout=timeout_s, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        if env_backup is None:
            os.environ.pop("CDAE_SMOKE", None)
        else:
            os.environ["CDAE_SMOKE"] = env_backup
    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / path.name
    nbformat.write(notebook, executed)
    return executed


def run_quickstart(smoke: bool = False) -> int:
    """Run :data:`QUICKSTART_NOTEBOOKS`; print where the figures are. Returns an exit code."""
    notebooks_dir = repo_root() / "notebooks"
    out_dir = repo_root() / "runs" / "notebooks"
    for name in QUICKSTART_NOTEBOOKS:
        start = time.perf_counter()
        print(f"running {name} ({'smoke' if smoke else 'full'} mode) ...", flush=True)
        executed = run_notebook(notebooks_dir / name, out_dir, smoke=smoke)
        print(f"  done in {time.perf_counter() - start:.0f} s -> {executed}", flush=True)
    figures = sorted(figures_dir().glob("*.png"))
    print(f"{len(figures)} figures in {figures_dir()}")
    return 0
