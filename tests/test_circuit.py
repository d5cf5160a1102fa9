"""CausalCircuit loader: the published .npz layout written small, decoded, resized; faults."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from cdae.data.circuit import (
    CIRCUIT_VARIABLES,
    CircuitFormatError,
    CircuitNotFoundError,
    circuit_dir,
    load_causal_circuit,
    split_files,
)


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def fake_split(n: int, side: int = 32, seed: int = 0, pairs: bool = True, storage: str = "bytes"):
    """Random RGB images (n[, 2], side, side, 3), their PNG files stored as ``storage``
    ("bytes": fixed-width, as np.load reads without pickle; "object": pickled bytes objects;
    "buffer": zero-padded uint8 rows), and latents (n[, 2], 4)."""
    rng = np.random.default_rng(seed)
    shape = (n, 2, side, side, 3) if pairs else (n, side, side, 3)
    images = rng.integers(0, 256, size=shape, dtype=np.uint8)
    encoded = np.empty(shape[: 2 if pairs else 1], dtype=object)
    for index in np.ndindex(encoded.shape):
        encoded[index] = png_bytes(images[index])
    if storage == "bytes":
        encoded = encoded.astype(bytes)
    elif storage == "buffer":
        width = max(len(blob) for blob in encoded.flat)
        padded = np.zeros((*encoded.shape, width), np.uint8)
        for index in np.ndindex(encoded.shape):
            padded[index][: len(encoded[index])] = np.frombuffer(encoded[index], np.uint8)
        encoded = padded
    latents = rng.uniform(0, 1, size=(n, 2, 4) if pairs else (n, 4))
    return images, encoded, latents


def test_pairs_are_decoded_losslessly_and_the_first_element_is_kept(tmp_path):
    images, encoded, latents = fake_split(5)
    assert encoded.dtype.kind == "S"  # fixed-width bytes: no pickle needed
    np.savez(tmp_path / "train.npz", imgs=encoded, original_latents=latents,
             intervention_labels=np.zeros(5))
    split = load_causal_circuit(tmp_path, "train", size=None)
    assert split.images.dtype == np.uint8 and split.images.shape == (5, 32, 32, 3)
    np.testing.assert_array_equal(split.images, images[:, 0])
    assert list(split.labels.columns) == list(CIRCUIT_VARIABLES)
    np.testing.assert_allclose(split.labels.to_numpy(), latents[:, 0])
    after = load_causal_circuit(tmp_path, "train", size=None, pair="after")
    np.testing.assert_array_equal(after.images, images[:, 1])
    np.testing.assert_allclose(after.labels.to_numpy(), latents[:, 1])


def test_both_interleaves_pairs_with_index_columns(tmp_path):
    images, encoded, latents = fake_split(3)
    np.savez(tmp_path / "test.npz", imgs=encoded, original_latents=latents)
    both = load_causal_circuit(tmp_path, "test", size=None, pair="both")
    np.testing.assert_array_equal(both.images, images.reshape(6, 32, 32, 3))
    assert both.labels["pair_index"].tolist() == [0, 0, 1, 1, 2, 2]
    assert both.labels["pair_element"].tolist() == [0, 1, 0, 1, 0, 1]
    np.testing.assert_allclose(both.labels[list(CIRCUIT_VARIABLES)], latents.reshape(6, 4))


def test_resize_keeps_a_linear_ramp(tmp_path):
    # a horizontal ramp: after 64 -> 16 resizing, each column keeps the mean of its 4 columns
    ramp = np.tile(np.arange(64, dtype=np.uint8)[None, :, None] * 4, (64, 1, 3))
    encoded = np.empty((1,), dtype=object)
    encoded[0] = png_bytes(ramp)
    np.savez(tmp_path / "val.npz", images=encoded.astype(bytes), latents=np.zeros((1, 4)))
    split = load_causal_circuit(tmp_path, "val", size=16)
    assert split.images.shape == (1, 16, 16, 3)
    expected = ramp[0, :, 0].reshape(16, 4).mean(axis=1)
    np.testing.assert_allclose(split.images[0, 8, :, 0], expected, atol=2.5)


def test_numbered_shards_are_read_in_numeric_order_and_limit_stops_early(tmp_path):
    parts = [fake_split(2, side=8, seed=k) for k in range(11)]
    for k, (_, encoded, latents) in enumerate(parts):
        np.savez(tmp_path / f"train-{k}.npz", imgs=encoded, original_latents=latents)
    names = [p.name for p in split_files(tmp_path, "train")]
    assert names == [f"train-{k}.npz" for k in range(11)]  # train-10 after train-9
    whole = load_causal_circuit(tmp_path, "train", size=None)
    expected = np.concatenate([images[:, 0] for images, _, _ in parts])
    np.testing.assert_array_equal(whole.images, expected)
    few = load_causal_circuit(tmp_path, "train", size=None, limit=3)
    np.testing.assert_array_equal(few.images, expected[:3])
    assert [p.name for p in few.files][:2] == ["train-0.npz", "train-1.npz"]


def test_unpaired_files_and_decoded_arrays_are_accepted(tmp_path):
    images, encoded, latents = fake_split(4, pairs=False)
    np.savez(tmp_path / "train.npz", x=encoded, z=latents)
    np.testing.assert_array_equal(load_causal_circuit(tmp_path, "train", size=None).images, images)
    np.savez(tmp_path / "test.npz", images=images, labels=latents)
    np.testing.assert_array_equal(load_causal_circuit(tmp_path, "test", size=None).images, images)
    with pytest.raises(CircuitFormatError, match="pairs"):
        load_causal_circuit(tmp_path, "test", pair="after")


@pytest.mark.parametrize("pairs", [True, False])
def test_zero_padded_uint8_buffers_decode(tmp_path, pairs):
    images, encoded, latents = fake_split(3, pairs=pairs, storage="buffer")
    assert encoded.dtype == np.uint8 and encoded.ndim == (3 if pairs else 2)
    np.savez(tmp_path / "train.npz", imgs=encoded, original_latents=latents)
    split = load_causal_circuit(tmp_path, "train", size=None)
    np.testing.assert_array_equal(split.images, images[:, 0] if pairs else images)


def test_pickled_images_need_allow_pickle(tmp_path):
    images, encoded, latents = fake_split(2, storage="object")
    np.savez(tmp_path / "train.npz", imgs=encoded, original_latents=latents)
    with pytest.raises(CircuitFormatError, match="allow_pickle=True"):
        load_causal_circuit(tmp_path, "train")
    split = load_causal_circuit(tmp_path, "train", size=None, allow_pickle=True)
    np.testing.assert_array_equal(split.images, images[:, 0])


def test_missing_split_names_files_download_and_environment_variable(tmp_path, monkeypatch):
    with pytest.raises(CircuitNotFoundError) as info:
        load_causal_circuit(tmp_path, "train")
    message = str(info.value)
    for needle in (str(tmp_path / "train.npz"), "train-0.npz", "Brehmer", "CDAE_CIRCUIT_DIR"):
        assert needle in message
    assert isinstance(info.value, FileNotFoundError)
    monkeypatch.setenv("CDAE_CIRCUIT_DIR", str(tmp_path / "elsewhere"))
    assert circuit_dir() == tmp_path / "elsewhere"
    with pytest.raises(CircuitNotFoundError, match="elsewhere"):
        load_causal_circuit(None, "test")


def test_corrupt_png_names_the_file_and_index(tmp_path):
    _, encoded, latents = fake_split(4)
    encoded[2, 1] = encoded[2, 1][:40]  # truncated PNG
    np.savez(tmp_path / "train.npz", imgs=encoded, original_latents=latents)
    load_causal_circuit(tmp_path, "train", limit=2)  # the bad sample is not reached
    with pytest.raises(CircuitFormatError, match=r"train.npz: image 2 \(pair element 1\)"):
        load_causal_circuit(tmp_path, "train", pair="both")


def test_unknown_keys_are_listed(tmp_path):
    _, encoded, latents = fake_split(2)
    np.savez(tmp_path / "train.npz", pictures=encoded, original_latents=latents)
    with pytest.raises(CircuitFormatError, match=r"no image array.*found \['pictures'"):
        load_causal_circuit(tmp_path, "train")


@pytest.mark.parametrize(
    ("latents", "pattern"),
    [(np.zeros((3, 2, 4)), "3 latent rows"), (np.zeros((4, 2, 5)), r"\(4, 2, 5\)"),
     (np.full((4, 4), np.nan), "NaN")],
)
def test_shape_mismatches_and_bad_latents_raise(tmp_path, latents, pattern):
    _, encoded, _ = fake_split(4)
    np.savez(tmp_path / "train.npz", imgs=encoded, original_latents=latents)
    with pytest.raises(CircuitFormatError, match=pattern):
        load_causal_circuit(tmp_path, "train")


def test_both_layouts_at_once_and_bad_arguments_raise(tmp_path):
    _, encoded, latents = fake_split(1)
    for name in ("train.npz", "train-0.npz"):
        np.savez(tmp_path / name, imgs=encoded, original_latents=latents)
    with pytest.raises(CircuitFormatError, match="both"):
        load_causal_circuit(tmp_path, "train")
    with pytest.raises(ValueError, match="pair must be one of"):
        load_causal_circuit(tmp_path, "train", pair="first")
    with pytest.raises(ValueError, match="size"):
        load_causal_circuit(tmp_path, "train", size=0)
