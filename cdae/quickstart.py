"""The main job: execute the tutorial notebooks in order, which writes every figure to
:func:`cdae.paths.figures_dir` (``runs/figures/`` unless ``CDAE_FIGURES_DIR`` says otherwise).

Each notebook loads what exists (datasets, checkpoints) and otherwise generates or trains it, so
the first run takes longer than later ones. Executed copies are saved under ``runs/notebooks/``
for reading; the notebooks in ``notebooks/`` stay stripped.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cdae.paths import figures_dir, repo_root

#: Notebooks the main job runs, in order: the quickstart on the shipped model, then every
#: tutorial that does not train (05 trains unless its run folder already holds a checkpoint).
QUICKSTART_NOTEBOOKS = (
    "00_quickstart.ipynb",
    "01_seeing_vs_doing.ipynb",
    "02_data_morphomnist.ipynb",
    "03_data_pendulum.ipynb",
    "04_diffusion_basics.ipynb",
)


def _code_cells(notebook: Any) -> int:
    return sum(cell.cell_type == "code" for cell in notebook.cells)


def _warnings_in(cell: Any) -> list[str]:
    """The lines of a cell's stderr output that carry a Python warning."""
    lines = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream" and output.get("name") == "stderr":
            lines += [line.strip() for line in output.get("text", "").splitlines()
                      if "Warning:" in line]
    return lines


def run_notebook(path: Path, out_dir: Path, smoke: bool, timeout_s: int = 3600,
                 progress: bool = True) -> Path:
    """Execute one notebook top to bottom in its own folder; save the executed copy.

    A progress bar counts the code cells done; every distinct warning a cell prints (e.g. that
    the shipped MNIST sample stands in for the full test set) is repeated in the terminal. The
    kernel talks over IPC sockets where the system has them (no unencrypted TCP, and none of
    the kernel's warning about it).
    """
    import nbformat
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from tqdm.auto import tqdm

    notebook = nbformat.read(path, as_version=4)
    bar = tqdm(total=_code_cells(notebook), desc=path.stem, unit="cell", disable=not progress,
               dynamic_ncols=True)
    seen: set[str] = set()

    def executed(cell: Any, cell_index: int, execute_reply: Any) -> None:
        bar.update(cell.cell_type == "code")
        for line in _warnings_in(cell):
            if line not in seen:
                seen.add(line)
                bar.write(f"  {path.name}, cell {cell_index + 1}: {line}")

    env_backup = os.environ.get("CDAE_SMOKE")
    os.environ["CDAE_SMOKE"] = "1" if smoke else "0"
    sockets = tempfile.TemporaryDirectory(prefix="cdae-kernel-")
    kernel = (KernelManager(kernel_name="python3", transport="ipc",
                            ip=os.path.join(sockets.name, "kernel"))  # absolute: the kernel
              if os.name == "posix" else KernelManager(kernel_name="python3"))  # runs elsewhere
    out_dir.mkdir(parents=True, exist_ok=True)
    executed_path = out_dir / path.name
    try:
        NotebookClient(notebook, km=kernel, timeout=timeout_s, kernel_name="python3",
                       on_cell_executed=executed,
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    except CellExecutionError as exc:
        nbformat.write(notebook, executed_path)  # the full traceback is kept there
        raise NotebookFailed(path.name, _last_error_line(exc), executed_path) from None
    finally:
        bar.close()
        if kernel.has_kernel:  # a kernel left running warns when its parent exits
            kernel.shutdown_kernel(now=True)
        sockets.cleanup()
        if env_backup is None:
            os.environ.pop("CDAE_SMOKE", None)
        else:
            os.environ["CDAE_SMOKE"] = env_backup
    notebook.metadata["cdae"] = {"smoke": smoke}  # the course site reuses copies of its mode
    nbformat.write(notebook, executed_path)
    return executed_path


class NotebookFailed(RuntimeError):
    """A notebook's cell raised: the error's last line and where the full traceback is."""

    def __init__(self, name: str, error: str, executed: Path) -> None:
        super().__init__(f"{name} stopped with {error}\n  (the executed copy {executed} holds "
                         "the full traceback)")


def _last_error_line(exc: Exception) -> str:
    """``ename: evalue`` of a cell error, without the ANSI colours of the traceback."""
    name, value = getattr(exc, "ename", ""), getattr(exc, "evalue", "")
    text = f"{name}: {value}" if name else str(exc).strip().splitlines()[-1]
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def course_notebooks() -> list[str]:
    """Every numbered notebook of the course, in order (``notebooks/NN_*.ipynb``)."""
    return sorted(path.name for path in (repo_root() / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def run_notebooks(names: Sequence[str], smoke: bool = False) -> int:
    """Run ``names`` (notebook file names) in order; print where the figures are. Returns an
    exit code: 1 at the first notebook that fails (the others are not run)."""
    notebooks_dir = repo_root() / "notebooks"
    out_dir = repo_root() / "runs" / "notebooks"
    for name in names:
        start = time.perf_counter()
        print(f"running {name} ({'smoke' if smoke else 'full'} mode) ...", flush=True)
        try:
            executed = run_notebook(notebooks_dir / name, out_dir, smoke=smoke)
        except NotebookFailed as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            return 1
        print(f"  done in {time.perf_counter() - start:.0f} s -> {executed}", flush=True)
    figures = sorted(figures_dir().glob("*.png"))
    print(f"{len(figures)} figures in {figures_dir()}")
    return 0


def run_quickstart(smoke: bool = False) -> int:
    """Run :data:`QUICKSTART_NOTEBOOKS` (:func:`run_notebooks`). Returns an exit code."""
    return run_notebooks(QUICKSTART_NOTEBOOKS, smoke)
