"""The main job on a fresh machine: a clean copy of the repository, no ``CDAE_*`` variable, and
no network. Every notebook of the quickstart must run and write its figures."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cdae.quickstart import QUICKSTART_NOTEBOOKS

ROOT = Path(__file__).resolve().parents[1]

#: Imported first by every Python process of the run (notebook kernels included): any connection
#: to a non-loopback address fails, as on a machine without network.
SOCKET_GUARD = '''
import socket

_connect = socket.socket.connect


def _guarded(self, address):
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and host not in ("127.0.0.1", "::1", "localhost") and "/" not in host:
        raise OSError(f"network disabled by the offline test (tried {address!r})")
    return _connect(self, address)


socket.socket.connect = _guarded
'''


def clean_copy(target: Path) -> Path:
    """A fresh clone of the working tree: its files (tracked and not ignored) committed to a new
    git repository, so that ``git status`` afterwards shows anything a run changed."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_bytes(source.read_bytes())
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "clone"]):
        subprocess.run(git + command, cwd=target, check=True, capture_output=True)
    return target


@pytest.mark.slow
def test_quickstart_runs_offline_from_a_clean_copy_with_no_variables(tmp_path):
    repo = clean_copy(tmp_path / "repo")
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(SOCKET_GUARD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDAE_") and k != "CI"}
    unreachable = "http://127.0.0.1:9"  # nothing listens there: every download is refused
    env.update(PYTHONPATH=f"{guard}{os.pathsep}{repo}", http_proxy=unreachable,
               https_proxy=unreachable, HTTP_PROXY=unreachable, HTTPS_PROXY=unreachable,
               MPLBACKEND="Agg")
    done = subprocess.run([sys.executable, "-m", "cdae", "quickstart", "--smoke"], cwd=repo,
                          env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for name in QUICKSTART_NOTEBOOKS:
        assert f"running {name}" in done.stdout and (repo / "runs" / "notebooks" / name).exists()
        prefix = name[:3]
        assert list((repo / "runs" / "figures").glob(f"{prefix}*.png")), f"{name} wrote no figure"
    # the sample's warning reaches the terminal, not only the executed notebook
    assert "first 1,000 MNIST test digits shipped" in done.stdout + done.stderr
    assert "eavesdropping" not in done.stdout + done.stderr
    changed = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True,
                             text=True, check=True).stdout
    assert changed == "", f"the quickstart changed files of the clone:\n{changed}"


def test_run_notebook_counts_cells_relays_warnings_and_keeps_the_kernel_quiet(tmp_path, capfd):
    import nbformat

    from cdae.quickstart import run_notebook

    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# a tiny notebook"),
        nbformat.v4.new_code_cell("import warnings\nwarnings.warn('the sample stands in')"),
        nbformat.v4.new_code_cell("x = 1 + 1"),
    ])
    path = tmp_path / "tiny.ipynb"
    nbformat.write(notebook, path)
    executed = run_notebook(path, tmp_path / "out", smoke=True)
    assert nbformat.read(executed, as_version=4).cells[2].execution_count == 2
    out, err = capfd.readouterr()
    terminal = out + err
    assert "tiny.ipynb, cell 2: " in terminal and "UserWarning: the sample stands in" in terminal
    assert "2/2" in terminal  # the progress bar counted both code cells
    assert "eavesdropping" not in terminal  # no unencrypted-TCP warning from the kernel


def test_a_failing_notebook_is_one_line_and_keeps_its_traceback_in_the_executed_copy(tmp_path):
    import nbformat

    from cdae.quickstart import NotebookFailed, run_notebook

    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("def load():\n    raise ValueError('the sample is damaged')"),
        nbformat.v4.new_code_cell("load()"),
    ])
    path = tmp_path / "broken.ipynb"
    nbformat.write(notebook, path)
    with pytest.raises(NotebookFailed) as info:
        run_notebook(path, tmp_path / "out", smoke=True, progress=False)
    message = str(info.value)
    assert message.startswith("broken.ipynb stopped with ValueError: the sample is damaged")
    assert "Traceback" not in message and len(message.splitlines()) == 2
    executed = nbformat.read(tmp_path / "out" / "broken.ipynb", as_version=4)
    assert any(o.get("ename") == "ValueError" for o in executed.cells[1].outputs)


def test_run_notebook_shuts_its_kernel_down_before_the_process_exits(tmp_path):
    import nbformat

    path = tmp_path / "tiny.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")]), path)
    script = ("import sys; from pathlib import Path; from cdae.quickstart import run_notebook; "
              "run_notebook(Path(sys.argv[1]), Path(sys.argv[2]), smoke=True, progress=False)")
    done = subprocess.run([sys.executable, "-c", script, str(path), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Parent appears to have exited" not in done.stdout + done.stderr
