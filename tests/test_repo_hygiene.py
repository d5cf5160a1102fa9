"""Repository rules that CI enforces: stripped notebooks, ruff-clean code, the two commands."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _tool(name: str) -> str:
    candidate = Path(sys.executable).with_name(name)
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; run `make install`")
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stripped_except_kept_regression_cells(path):
    notebook = json.loads(path.read_text())
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code":
            continue
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.get("outputs") and "keep_output" not in tags:
            pytest.fail(
                f"{path.name} cell {index} keeps outputs; run `nbstripout --keep-count {path}` "
                "or tag the cell keep_output if it is a deliberate regression check"
            )


def test_notebooks_exist_and_are_numbered():
    assert NOTEBOOKS, "no notebooks found under notebooks/"
    for path in NOTEBOOKS:
        assert path.name[:2].isdigit() and path.name[2] == "_", path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_figures_carry_their_notebooks_number(path):
    # figures/ is sorted by notebook: a figure saved under another number would be committed,
    # ignored or overwritten as if it were another notebook's
    import re

    source = "".join("".join(cell["source"]) for cell in json.loads(path.read_text())["cells"])
    names = re.findall(r"save_figure\([^,]+,\s*f?\"([^\"]+)\"", source)
    wrong = [name for name in names if not name.startswith(path.name[:3])]
    assert not wrong, f"{path.name} saves figures {wrong}; prefix them with {path.name[:3]!r}"


def test_ruff_is_clean():
    result = subprocess.run(
        [_tool("ruff"), "check", "cdae", "tests", "benchmarks", "notebooks"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make quickstart" in readme
    assert ci.strip().splitlines()[-1] == "make test"


def test_readme_repository_map_names_every_library_module():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Repository"):readme.index("## Paths and switches")]
    named = set(section.replace(",", " ").split())
    library = ROOT / "cdae"
    entries = [p for p in library.iterdir() if p.suffix == ".py" and p.name != "__main__.py"]
    entries += [p for p in library.iterdir() if (p / "__init__.py").exists()]
    entries += [p for p in (library / "data").iterdir() if (p / "__init__.py").exists()]
    entries.append(library / "data" / "cache.py")
    missing = sorted(p.name + ("/" if p.is_dir() else "") for p in entries
                     if p.name + ("/" if p.is_dir() else "") not in named)
    assert not missing, f"the README's repository map does not mention {missing}"


def _import_graph() -> dict[str, set[str]]:
    """cdae module -> the cdae modules it imports anywhere (module level or inside functions),
    leaving out imports of its own parent packages."""
    import ast

    modules = {}
    for path in (ROOT / "cdae").rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cdae"):
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules
                           else node.module for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("cdae")]
            else:
                continue
            for target in targets:
                while target not in modules and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in modules and target != name and not name.startswith(target + "."):
                    graph[name].add(target)
    return graph


def test_the_library_has_no_import_cycles_not_even_through_lazy_imports():
    graph, cycles = _import_graph(), []

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt in path:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in done:
                visit(nxt, path + [nxt])
        done.add(node)

    done: set[str] = set()
    for start in sorted(graph):
        if start not in done:
            visit(start, [start])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles[:5])
