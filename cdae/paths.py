"""Where things live: data, checkpoints and figures, each overridable by an environment variable.

| variable            | default                  | holds                                          |
|---------------------|--------------------------|------------------------------------------------|
| ``CDAE_DATA_DIR``   | ``<repo>/data``          | generated datasets, downloads, checkpoints     |
| ``CDAE_FIGURES_DIR``| ``<repo>/figures``       | figures written by notebooks and the CLI       |
| ``CDAE_MNIST_DIR``  | unset                    | a folder with MNIST IDX files (offline source) |
| ``CDAE_DEEPSCM_DIR``| ``<data>/deepscm-morphomnist`` | the Deep SCM Morpho-MNIST set            |
| ``CI`` / ``CDAE_SMOKE`` | unset                | smoke mode: every long loop shrinks            |
"""

from __future__ import annotations

import os
from pathlib import Path

_FALSE = {"", "0", "false", "no", "off"}


def repo_root() -> Path:
    """The repository root when running from a checkout, else the current directory."""
    candidate = Path(__file__).resolve().parents[1]
    if (candidate / "pyproject.toml").exists():
        return candidate
    return Path.cwd()


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else default


def data_dir() -> Path:
    """Root folder for datasets and downloads (``CDAE_DATA_DIR``)."""
    return _env_path("CDAE_DATA_DIR", repo_root() / "data")


def figures_dir() -> Path:
    """Folder where figures are saved (``CDAE_FIGURES_DIR``, default ``runs/figures``, ignored
    by git); created on demand. The committed figures in ``figures/`` change only when someone
    asks for it (``make figures`` sets ``CDAE_FIGURES_DIR=figures``), never as a side effect of
    the quickstart or the tests."""
    path = _env_path("CDAE_FIGURES_DIR", repo_root() / "runs" / "figures")
    path.mkdir(parents=True, exist_ok=True)
    return path


def pretrained_dir() -> Path:
    """Folder of the small checkpoints that ship with the project (tracked by git)."""
    return repo_root() / "data" / "pretrained"


def deepscm_dir() -> Path:
    """Folder holding the Deep SCM Morpho-MNIST files (``CDAE_DEEPSCM_DIR``)."""
    return _env_path("CDAE_DEEPSCM_DIR", data_dir() / "deepscm-morphomnist")


def offline_mode() -> bool:
    """True when ``CDAE_OFFLINE`` is set to a true value: nothing is downloaded implicitly (the
    test suite sets it, so a test never reaches the network); explicit ``cdae data`` downloads
    still run."""
    return os.environ.get("CDAE_OFFLINE", "").strip().lower() not in _FALSE


def smoke_mode() -> bool:
    """True when ``CDAE_SMOKE`` or ``CI`` is set to a true value: long loops run small."""
    for name in ("CDAE_SMOKE", "CI"):
        value = os.environ.get(name)
        if value is not None:
            return value.strip().lower() not in _FALSE
    return False
