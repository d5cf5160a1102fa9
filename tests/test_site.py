"""The course site (``make site``, ``docs/``) built in smoke mode: every local link and image of
the generated HTML resolves, Sphinx reports no missing reference, every solution is folded, and
a notebook page opened in headless Chromium shows its figures and its formulas.

Only the notebooks in ``EXECUTED`` are executed here; the others are rendered from their
stripped source (links, solutions and formulas included) or from a fake executed copy. nbval
already runs every notebook in smoke mode, and executing all of them again for the site took
8 min on this project's shared 2-core machine, where this test took 22-40 s (the build 16-27 s).
"""

import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from test_browser import page  # noqa: F401  (the headless Chromium fixture)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXECUTED = ("00",)  # the quickstart: figures and folded solutions
#: Sphinx's and myst's warning types for a target that does not exist
MISSING = re.compile(r"\[(myst\.xref_missing|ref\.\w+|toc\.\w+|image\.not_readable)\]")

pytestmark = pytest.mark.slow


class Links(HTMLParser):
    """The ``href``/``src`` values and the element ids of one HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        self.urls += [values[k] for k in ("href", "src") if values.get(k)]
        self.ids |= {values[k] for k in ("id", "name") if values.get(k)}


def parse(path: Path) -> Links:
    links = Links()
    links.feed(path.read_text(encoding="utf-8"))
    return links


def executed_copy(path: Path, folder: Path, smoke: bool) -> str:
    """Write a fake executed copy of a notebook (as ``run_notebook`` would, in smoke mode or not)
    whose first code cell printed a marker; return the marker."""
    notebook = json.loads(path.read_text())
    marker = f"output of a {'smoke' if smoke else 'full'}-mode copy"
    notebook["metadata"]["cdae"] = {"smoke": smoke}
    code = next(cell for cell in notebook["cells"] if cell["cell_type"] == "code")
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": marker}]
    (folder / path.name).write_text(json.dumps(notebook))
    return marker


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> tuple[Path, str]:
    """The site built in smoke mode into a temporary folder: (its html folder, its warnings).
    Its executed copies: one of the last notebook in smoke mode, one of the one before in full
    mode."""
    out = tmp_path_factory.mktemp("site")
    (out / "executed").mkdir()
    executed_copy(NOTEBOOKS[-1], out / "executed", smoke=True)
    executed_copy(NOTEBOOKS[-2], out / "executed", smoke=False)
    env = {**os.environ, "CDAE_SMOKE": "1", "CDAE_SITE_EXECUTE_ONLY": " ".join(EXECUTED),
           "CDAE_FIGURES_DIR": str(out / "figures"), "CDAE_SITE_EXECUTED": str(out / "executed")}
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-w", str(out / "warnings.txt"),
         "-d", str(out / "doctrees"), "-D", "nb_execution_mode=force",
         str(ROOT / "docs"), str(out / "html")],
        env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return out / "html", (out / "warnings.txt").read_text()


def test_every_notebook_is_a_page_and_no_reference_is_missing(site):
    html, warnings = site
    missing = [line for line in warnings.splitlines() if MISSING.search(line)]
    assert not missing, "\n".join(missing)
    for notebook in NOTEBOOKS:
        assert (html / "notebooks" / f"{notebook.stem}.html").is_file(), notebook.name
    index = parse(html / "index.html").urls  # the sidebar and the toctree: each in order
    pages = list(dict.fromkeys(url for url in index if url.startswith("notebooks/")))
    assert pages == [f"notebooks/{n.stem}.html" for n in NOTEBOOKS], "the toctree's order"


def test_every_local_link_and_image_resolves(site):
    html, _ = site
    pages = {path: parse(path) for path in html.rglob("*.html")
             if "_static" not in path.relative_to(html).parts}  # the theme's templates are there
    broken = []
    for path, links in pages.items():
        for url in links.urls:
            parts = urlsplit(url)
            if parts.scheme or parts.netloc:
                continue  # external (the widgets' scripts): not part of the offline site
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if not target.is_file():
                broken.append(f"{path.relative_to(html)}: {url}")
            elif parts.fragment and target.suffix == ".html" and parts.fragment not in (
                    pages[target].ids if target in pages else parse(target).ids):
                broken.append(f"{path.relative_to(html)}: {url} (no such anchor)")
    assert not broken, "\n".join(broken[:30])
    executed = [html / "notebooks" / f"{n.stem}.html" for n in NOTEBOOKS if n.name[:2] in EXECUTED]
    for path in executed:
        assert any("_images/" in url for url in pages[path].urls), f"{path.name} shows no figure"


def test_an_executed_copy_of_the_same_mode_is_reused(site):
    html, _ = site
    last, before = (html / "notebooks" / f"{n.stem}.html" for n in NOTEBOOKS[-2:][::-1])
    assert "output of a smoke-mode copy" in last.read_text(encoding="utf-8")
    assert "output of a full-mode copy" not in before.read_text(encoding="utf-8")


def test_run_notebook_records_its_mode_in_the_executed_copy(tmp_path):
    import nbformat

    from cdae.quickstart import run_notebook

    path = tmp_path / "tiny.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")]), path)
    executed = run_notebook(path, tmp_path / "out", smoke=False, progress=False)
    assert json.loads(executed.read_text())["metadata"]["cdae"] == {"smoke": False}


def test_solutions_are_folded(site):
    html, _ = site
    for notebook in NOTEBOOKS:
        cells = json.loads(notebook.read_text())["cells"]
        hidden = sum("hide-input" in cell["metadata"].get("tags", []) for cell in cells)
        text = (html / "notebooks" / f"{notebook.stem}.html").read_text(encoding="utf-8")
        folded = re.findall(r'<details class="[^"]*\bhide above-input"', text)
        assert len(folded) == hidden, notebook.name


def test_a_notebook_page_shows_its_figures_and_formulas_in_chromium(site, page):  # noqa: F811
    html, _ = site
    page.route(re.compile(r"^(?!file:)"), lambda route: route.abort())  # offline, as promised
    quickstart = next(html.glob("notebooks/00_*.html"))
    page.goto(quickstart.as_uri(), wait_until="load")
    images = page.evaluate("() => [...document.images].map(i => [i.src, i.naturalWidth])")
    assert images and all(width > 0 for _, width in images), images
    folded = page.evaluate("() => [...document.querySelectorAll('details.above-input')]"
                           ".map(d => d.open || d.querySelector('pre').checkVisibility())")
    assert folded and not any(folded), "a solution is shown unfolded"

    page.goto(next(html.glob("notebooks/04_*.html")).as_uri(), wait_until="load")
    page.wait_for_function("() => window.MathJax && MathJax.Hub", timeout=30_000)
    page.evaluate("() => new Promise(done => MathJax.Hub.Register.StartupHook('End', done))")
    assert page.locator("span.MathJax").count(), "no formula was typeset"
    assert not page.locator(".MathJax_Error, .merror").count(), "a formula did not typeset"
