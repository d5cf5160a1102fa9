"""Sphinx configuration of the course site: the executed notebooks, rendered by myst-nb.

``make site`` builds it into ``runs/site/html`` (full mode); ``tests/test_site.py`` builds it in
smoke mode. ``notebooks`` here is a link to the repository's ``notebooks/``, so the site reads
the notebooks where they are and writes nothing beside them. Notebooks are executed by
jupyter-cache: a notebook whose code cells did not change since the last build is not run again.
One cache per mode (``runs/site/jupyter_cache/full`` or ``smoke``), so a smoke run never stands
in for a full one.
"""

import json
import os
import shutil
import sys
from pathlib import Path

import jupyter_server_mathjax

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cdae.paths import smoke_mode  # noqa: E402

project = "cdae: causal diffusion autoencoders, the course"
author = "the cdae authors"
copyright = "the cdae authors, MIT licence"

extensions = ["myst_nb"]
root_doc = "index"
exclude_patterns = ["notebooks/README.md", "**/.ipynb_checkpoints"]  # README: index.md includes it
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_update_mathjax = False  # its settings are MathJax 3's; the site ships MathJax 2 (below)
myst_heading_anchors = 3

# execution: every notebook runs in its own folder (as under nbval), one cache per mode. The
# kernels inherit this process's environment: without MPLBACKEND, ipykernel picks its inline
# backend, so figures are shown in the outputs (the tests set MPLBACKEND=Agg, which shows none)
os.environ.pop("MPLBACKEND", None)
nb_execution_mode = "cache"
nb_execution_cache_path = str(
    ROOT / "runs" / "site" / "jupyter_cache" / ("smoke" if smoke_mode() else "full"))
nb_execution_in_temp = False
nb_execution_timeout = 3600
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
# executed copies that `python -m cdae quickstart` and `make figures` leave (cdae.quickstart.
# run_notebook): a notebook whose copy ran in this mode on the same code is rendered from it
# (reuse_executed_copy below), so `make site` after `make figures` runs nothing again
EXECUTED = Path(os.environ.get("CDAE_SITE_EXECUTED", ROOT / "runs" / "notebooks"))
# CDAE_SITE_EXECUTE_ONLY="00 01": execute only these notebooks, render the others from their
# stripped source (the site test: nbval already runs every notebook, so the site's checks need
# only a few executed pages)
_only = os.environ.get("CDAE_SITE_EXECUTE_ONLY", "").split()
nb_execution_excludepatterns = [path.name for path in (ROOT / "notebooks").glob("*.ipynb")
                                if _only and path.name[:2] not in _only]

html_theme = "sphinx_book_theme"
html_title = "cdae: the course"
html_theme_options = {
    "show_toc_level": 2,
    "use_download_button": False,
    "use_fullscreen_button": False,
}
html_last_updated_fmt = None

# MathJax from a Python package (jupyter-server-mathjax, MathJax 2), copied into the site, so
# the formulas render without a network; that package ships the STIX-Web fonts only
MATHJAX = Path(jupyter_server_mathjax.__file__).parent / "static"
mathjax_path = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"
mathjax2_config = {
    "tex2jax": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]]},
    "HTML-CSS": {"availableFonts": [], "preferredFont": None, "webFont": "STIX-Web",
                 "imageFont": None},
}


def copy_mathjax(app, exception) -> None:
    if exception is None and app.builder.format == "html":
        shutil.copytree(MATHJAX, Path(app.outdir) / "_static" / "mathjax", dirs_exist_ok=True)


# myst-nb folds the code cells tagged hide-input (the solutions) but renders markdown cells as
# they are: a markdown solution gets the same folded <details> element here
FOLD = ('<div class="cell docutils container">\n<details class="admonition hide above-input">\n'
        '<summary aria-label="Toggle hidden content">'
        '<p class="collapsed admonition-title">Show solution</p>'
        '<p class="expanded admonition-title">Hide solution</p></summary>\n\n{}\n\n'
        '</details>\n</div>')


def fold_markdown_solutions(notebook: dict) -> None:
    for cell in notebook["cells"]:
        if cell["cell_type"] == "markdown" and "hide-input" in cell["metadata"].get("tags", []):
            cell["source"] = FOLD.format("".join(cell["source"]))


def _code(notebook: dict) -> list[str]:
    return ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]


def reuse_executed_copy(notebook: dict, name: str) -> None:
    """Take the outputs of ``EXECUTED/name`` when that copy ran in this mode on the same code;
    the prose stays the source's. myst-nb then leaves the notebook unexecuted."""
    path = EXECUTED / name
    if not path.is_file():
        return
    executed = json.loads(path.read_text(encoding="utf-8"))
    if (executed["metadata"].get("cdae", {}).get("smoke") != smoke_mode()
            or _code(executed) != _code(notebook)):
        return
    runs = [c for c in executed["cells"] if c["cell_type"] == "code"]
    for cell, run in zip([c for c in notebook["cells"] if c["cell_type"] == "code"], runs,
                         strict=True):
        cell["outputs"], cell["execution_count"] = run["outputs"], run["execution_count"]
    notebook["metadata"]["mystnb"] = {"execution_mode": "off"}


def prepare_notebook(app, docname: str, source: list[str]) -> None:
    path = app.env.doc2path(docname)
    if path.suffix == ".ipynb":
        notebook = json.loads(source[0])
        reuse_executed_copy(notebook, path.name)
        fold_markdown_solutions(notebook)
        source[0] = json.dumps(notebook)


def setup(app) -> None:
    app.connect("source-read", prepare_notebook)
    app.connect("build-finished", copy_mathjax)
