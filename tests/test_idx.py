"""IDX reader/writer: round trips for every dtype, and clear errors on corrupt files."""

import gzip

import numpy as np
import pytest

from cdae.data.idx import IdxFormatError, read_idx, write_idx


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip(tmp_path, dtype, suffix):
    rng = np.random.default_rng(0)
    array = (rng.normal(size=(5, 7, 3)) * 50).astype(dtype)
    path = tmp_path / f"x-idx3-ubyte{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_header_layout_is_the_mnist_one(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"
    write_idx(path, np.arange(3, dtype=np.uint8))
    assert path.read_bytes() == bytes([0, 0, 8, 1, 0, 0, 0, 3, 0, 1, 2])


def test_wrong_magic(tmp_path):
    path = tmp_path / "bad-idx"
    path.write_bytes(b"\x12\x34\x08\x01" + b"\x00" * 8)
    with pytest.raises(IdxFormatError, match="magic"):
        read_idx(path)


def test_truncated_payload(tmp_path):
    path = tmp_path / "x-idx"
    write_idx(path, np.zeros((4, 4), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(IdxFormatError, match="truncated"):
        read_idx(path)


def test_corrupt_gzip(tmp_path):
    path = tmp_path / "x-idx.gz"
    write_idx(path, np.zeros((40, 40), dtype=np.uint8))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(IdxFormatError, match="gzip"):
        read_idx(path)


def test_missing_file_and_unsupported_dtype(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        read_idx(tmp_path / "nope.gz")
    with pytest.raises(TypeError, match="dtype"):
        write_idx(tmp_path / "b", np.zeros(3, dtype=np.complex64))


def test_failed_write_leaves_previous_file(tmp_path):
    path = tmp_path / "keep-idx.gz"
    write_idx(path, np.ones(3, dtype=np.uint8))
    with pytest.raises(TypeError):
        write_idx(path, np.zeros(3, dtype=np.complex64))
    np.testing.assert_array_equal(read_idx(path), [1, 1, 1])
    assert [p.name for p in tmp_path.iterdir()] == ["keep-idx.gz"]
    assert gzip.decompress(path.read_bytes())[:3] == b"\x00\x00\x08"
