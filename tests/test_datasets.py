"""CausalImageDataset, labelled masks and the dataset registry (cdae.data.datasets).

The label normaliser is tested in test_labels.py, image conversions in test_images.py and the
folder dataset in test_folder.py.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from offline import MNIST_REASON, full_mnist_dir, needs_full_mnist
from PIL import Image

from cdae.data import datasets
from cdae.data.datasets import (
    CausalImageDataset,
    available_datasets,
    build_dataset,
    build_splits,
    make_labelled_mask,
    register_dataset,
)
from cdae.data.images import images_to_nchw
from cdae.data.labels import LabelNormalizer
from cdae.data.verify import DatasetIntegrityError
from cdae.graph import CausalGraph
from cdae.paths import pretrained_dir

MORPHO = CausalGraph.preset("morphomnist")


def morpho_like(n: int, seed: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    """Random grey images (n, 28, 28) and Morpho-MNIST-like labels."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = pd.DataFrame({
        "thickness": rng.gamma(10, 0.2, n) + 0.5,
        "intensity": rng.uniform(64, 255, n),
        "digit": rng.integers(0, 10, n),
        "base_index": np.arange(n),
    })
    return images, labels


# ---------------------------------------------------------------------------- dataset


def test_grey_items_shapes_ranges_and_label_order():
    images, labels = morpho_like(12)
    images[0, 0, 0], images[0, 0, 1] = 0, 255
    data = CausalImageDataset(images, labels[["digit", "intensity", "thickness", "base_index"]],
                              MORPHO)
    image, y = data[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32
    assert image[0, 0, 0] == -1.0 and image[0, 0, 1] == 1.0
    assert image.min() >= -1 and image.max() <= 1
    np.testing.assert_allclose(((image + 1) * 127.5).round().numpy()[0], images[0])
    assert y.shape == (3,) and y.dtype == torch.float32
    expected = data.normalizer.normalize(labels.loc[0, MORPHO.nodes].to_numpy(float))
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-6)  # graph order, not column order
    assert y[2] == labels.loc[0, "digit"]
    assert data.image_shape == (1, 28, 28) and len(data) == 12
    assert data.variables == MORPHO.nodes and data.graph is MORPHO
    assert "base_index" in data.labels_natural.columns
    all_images, all_labels = data.tensors()
    torch.testing.assert_close(all_images[5], data[5][0])
    torch.testing.assert_close(all_labels[5], data[5][1])
    torch.testing.assert_close(data.labels_normalized, all_labels)


def test_rgba_to_rgb_and_resize_are_done_once():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(3, 96, 96, 4), dtype=np.uint8)
    labels = pd.DataFrame({"a": [0.0, 1.0, 2.0], "b": [1.0, 0.0, 1.0]})
    graph = CausalGraph([("a", "b")])
    keep = CausalImageDataset(images, labels, graph)
    assert keep.image_shape == (4, 96, 96)
    rgb = CausalImageDataset(images, labels, graph, channels=3)
    assert rgb.image_shape == (3, 96, 96)
    np.testing.assert_array_equal(rgb.images_uint8.permute(0, 2, 3, 1).numpy(), images[..., :3])
    small = CausalImageDataset(images, labels, graph, channels=3, size=64)
    assert small.image_shape == (3, 64, 64) and small[2][0].shape == (3, 64, 64)
    assert small.images_uint8.dtype == torch.uint8



@pytest.mark.parametrize(
    ("mutate", "error", "pattern"),
    [
        (lambda im, lab: (im, lab.drop(columns=["intensity"])), ValueError,
         r"no column for graph nodes \['intensity'\]; available columns: \['thickness', 'digit'"),
        (lambda im, lab: (im[:-1], lab), ValueError, "9 images but 10 label rows"),
        (lambda im, lab: (im.astype(np.float32), lab), ValueError, "must be uint8"),
        (lambda im, lab: (im[:, None], lab), ValueError, "channels-first"),
        (lambda im, lab: (im, lab.assign(thickness=np.r_[np.nan, np.ones(9)])), ValueError,
         r"'thickness' has 1 NaN/infinite values \(rows \[0\]"),
        (lambda im, lab: (im, lab.assign(digit=np.r_[10, np.zeros(9)])), ValueError,
         r"class indices in \[0, 10\); rows \[0\] hold \[10"),
        (lambda im, lab: (im, lab.assign(digit=np.r_[1.5, np.zeros(9)])), ValueError,
         r"rows \[0\] hold \[1.5\]"),
        (lambda im, lab: (im, lab.assign(intensity="bright")), ValueError, "not numeric"),
        (lambda im, lab: (im, lab.to_numpy()), TypeError, "must be a pandas DataFrame"),
    ],
)
def test_bad_inputs_raise_clear_errors(mutate, error, pattern):
    images, labels = morpho_like(10)
    images, labels = mutate(images, labels.drop(columns=["base_index"]))
    with pytest.raises(error, match=pattern):
        CausalImageDataset(images, labels, MORPHO)


def test_a_normaliser_for_another_graph_is_refused():
    images, labels = morpho_like(10)
    other = LabelNormalizer(["thickness", "intensity"], [0, 0], [1, 1])
    with pytest.raises(ValueError, match="normaliser is for variables"):
        CausalImageDataset(images, labels, MORPHO, normalizer=other)


def test_shared_normaliser_gives_test_labels_the_training_scale():
    images, labels = morpho_like(40)
    train = CausalImageDataset(images[:30], labels[:30], MORPHO)
    test = CausalImageDataset(images[30:], labels[30:], MORPHO, normalizer=train.normalizer)
    expected = (labels["thickness"].iloc[30] - labels["thickness"].iloc[:30].mean()) / labels[
        "thickness"].iloc[:30].std(ddof=0)
    assert test[0][1][0].item() == pytest.approx(expected, rel=1e-5)
    assert test.labels_natural.index.tolist() == list(range(10))


def test_labelled_fraction_mask_and_third_item():
    images, labels = morpho_like(10)
    data = CausalImageDataset(images, labels, MORPHO, labelled_fraction=0.3, seed=4,
                              return_labelled=True)
    assert data.labelled_mask.sum() == 3
    again = make_labelled_mask(10, None, 0.3, seed=4)
    np.testing.assert_array_equal(again, data.labelled_mask)
    assert not np.array_equal(again, make_labelled_mask(10, None, 0.3, seed=5))
    flags = [data[i][2].item() for i in range(10)]
    assert flags == data.labelled_mask.tolist()
    assert data.tensors()[2].tolist() == flags
    assert len(CausalImageDataset(images, labels, MORPHO)[0]) == 2
    # the normaliser sees only the labelled samples' labels
    seen = labels[data.labelled_mask]
    assert data.normalizer.shift[0] == pytest.approx(seen["thickness"].mean())
    with pytest.raises(ValueError, match="no labelled samples"):
        CausalImageDataset(images, labels, MORPHO, labelled_fraction=0.0)
    assert make_labelled_mask(4, None, None).all()
    with pytest.raises(ValueError, match="not both"):
        make_labelled_mask(4, [True] * 4, 0.5)
    with pytest.raises(ValueError, match="4 booleans"):
        make_labelled_mask(4, [1, 0, 1, 0], None)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        make_labelled_mask(4, None, 1.5)


def test_torch_images_are_accepted():
    images, labels = morpho_like(4)
    tensor = torch.from_numpy(images[..., None])
    assert images_to_nchw(tensor).shape == (4, 1, 28, 28)
    data = CausalImageDataset(tensor, labels, MORPHO)
    torch.testing.assert_close(data[3][0], CausalImageDataset(images, labels, MORPHO)[3][0])


# ---------------------------------------------------------------------------- registry


def test_the_normaliser_is_still_importable_from_datasets():
    assert datasets.LabelNormalizer is LabelNormalizer  # for code written before the split


def test_unknown_dataset_lists_the_registry():
    for name in ("morphomnist", "deepscm_morphomnist", "pendulum", "causal_circuit", "folder"):
        assert name in available_datasets()
    with pytest.raises(ValueError, match=r"unknown dataset 'mnist'; registered: \['causal_circ"):
        build_dataset("mnist", "train")


def test_register_build_and_build_splits_share_the_normaliser():
    images, labels = morpho_like(30)

    def toy(split, root=None, **kwargs):
        part = slice(0, 20) if split == "train" else slice(20, 30)
        return CausalImageDataset(images[part], labels[part], MORPHO, **kwargs)

    register_dataset("toy_for_test", toy)
    register_dataset("toy_for_test", toy)  # same function again (a re-run notebook cell): fine
    try:
        splits = build_splits("toy_for_test")
        assert len(splits["train"]) == 20 and len(splits["test"]) == 10
        assert splits["test"].normalizer is splits["train"].normalizer
        with pytest.raises(ValueError, match="already registered"):
            register_dataset("toy_for_test", lambda split, root=None: None)
        register_dataset("toy_for_test", overwrite=True)(toy)
    finally:
        datasets._BUILDERS.pop("toy_for_test", None)


def test_deepscm_train_split_missing_says_only_test_exists(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds only the test split"):
        build_dataset("deepscm_morphomnist", "train", root=tmp_path)
    with pytest.raises(ValueError, match="'train' and 'test'"):
        build_dataset("deepscm_morphomnist", "val", root=tmp_path)


def test_causal_circuit_through_the_registry(tmp_path):
    rng = np.random.default_rng(0)
    encoded = np.empty((5, 2), dtype=object)
    for index in np.ndindex(encoded.shape):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buffer, "PNG")
        encoded[index] = buffer.getvalue()
    latents = rng.uniform(size=(5, 2, 4))
    np.savez(tmp_path / "train.npz", imgs=encoded.astype(bytes), original_latents=latents)
    data = build_dataset("causal_circuit", "train", root=tmp_path, size=16, limit=4)
    assert len(data) == 4 and data.image_shape == (3, 16, 16)
    assert data.variables == ["arm", "blue", "green", "red"]
    np.testing.assert_allclose(data.labels_natural.to_numpy(), latents[:4, 0])


# ---------------------------------------------------------------------------- integration


def _has(module: str) -> bool:
    """Whether the module's file exists (its import errors then fail the test, not skip it)."""
    return importlib.util.find_spec(module) is not None


DEEPSCM = Path(os.environ.get("CDAE_DEEPSCM_DIR", "/nonexistent"))


@pytest.mark.skipif(not (_has("cdae.data.morphomnist")
                         and (DEEPSCM / "t10k-morpho.csv").exists()),
                    reason="needs cdae.data.morphomnist and CDAE_DEEPSCM_DIR")
def test_deepscm_test_split_builds():
    data = build_dataset("deepscm_morphomnist", "test", limit=500)
    assert len(data) == 500 and data.image_shape == (1, 28, 28)
    natural = data.labels_natural
    assert natural["digit"].between(0, 9).all()
    # the Deep SCM test set: thickness mean 2.5 and sd 0.63 over 10,000 digits
    assert natural["thickness"].mean() == pytest.approx(2.5, abs=0.15)
    images, labels = data.tensors()
    assert labels[:, 0].mean().abs() < 1e-5 and images.min() >= -1 and images.max() <= 1


@pytest.mark.slow
@pytest.mark.skipif(not _has("cdae.data.morphomnist"),
                    reason="needs cdae.data.morphomnist")
def test_generated_morphomnist_builds_from_the_cache(tmp_path, monkeypatch):
    if full_mnist_dir() is None:
        pytest.skip(MNIST_REASON)
    monkeypatch.setenv("CDAE_DATA_DIR", str(tmp_path))
    kwargs = {"limit": 12, "workers": 1, "progress": False}
    splits = build_splits("morphomnist", generate_kwargs=kwargs)
    assert (tmp_path / "morphomnist").is_dir()
    assert len(splits["train"]) == 12 and len(splits["test"]) == 12
    assert splits["test"].normalizer is splits["train"].normalizer
    again = build_dataset("morphomnist", "test", root=tmp_path / "morphomnist",
                          normalizer=splits["train"].normalizer)
    torch.testing.assert_close(again.tensors()[1], splits["test"].tensors()[1])


@pytest.mark.skipif(not _has("cdae.data.pendulum"), reason="needs cdae.data.pendulum")
def test_pendulum_builds_rgb_resized_and_from_the_cache(tmp_path, monkeypatch):
    from cdae.data.pendulum import write_dataset

    write_dataset(tmp_path / "mine", seed=0, limit=30, progress=False)
    train = build_dataset("pendulum", "train", root=tmp_path / "mine", limit=8, size=64)
    assert train.image_shape == (3, 64, 64) and len(train) == 8
    assert train.variables == CausalGraph.preset("pendulum").nodes
    images, labels = train.tensors()
    assert images.min() >= -1 and images.max() <= 1 and torch.isfinite(labels).all()
    rgba = build_dataset("pendulum", "test", root=tmp_path / "mine", channels=None,
                         normalizer=train.normalizer)
    assert rgba.image_shape == (4, 96, 96) and len(train) + len(rgba) <= 30
    monkeypatch.setenv("CDAE_DATA_DIR", str(tmp_path / "cache"))
    cached = build_dataset("pendulum", "test", generate_kwargs={"limit": 30, "progress": False},
                           normalizer=train.normalizer)
    assert (tmp_path / "cache" / "pendulum").is_dir()
    torch.testing.assert_close(cached.tensors()[1], rgba.tensors()[1])


# ---------------------------------------------------------------------------- explicit roots
def edit_first_row(csv_path: Path, column: str, value: float) -> None:
    table = pd.read_csv(csv_path)
    table.loc[0, column] = value
    table.to_csv(csv_path, index=False)


@needs_full_mnist
def test_an_edited_dataset_root_is_refused_by_its_manifest(tmp_path, capsys):
    from cdae.cli import main
    from cdae.data.morphomnist import tutorial_root

    root = tmp_path / "morphomnist"
    shutil.copytree(tutorial_root(smoke=True), root)
    assert len(build_dataset("morphomnist", "test", root=root)) == 200  # intact: fine
    edit_first_row(root / "t10k-morpho.csv", "thickness", 9.9)
    with pytest.raises(DatasetIntegrityError, match=r"sha256 mismatch for t10k-morpho.csv"):
        build_dataset("morphomnist", "test", root=root)
    assert main(["evaluate", str(pretrained_dir() / "morphomnist_small.pt"), "--data", str(root),
                 "--n", "2", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "does not match its MANIFEST.sha256" in err
    # the hint rebuilds the folder as it was (its args.json), not the default set
    args = json.loads((root / "args.json").read_text())
    assert (f"data morphomnist --out {root} --seed {args['seed']} --limit {args['limit']} "
            f"--draws-per-digit {args['draws_per_digit']} --overwrite") in err
    # and the command refuses to replace a dataset without --overwrite
    assert main(["data", "morphomnist", "--out", str(root), "--limit", "2", "--workers", "1"]) == 2
    assert "already holds a Morpho-MNIST dataset" in capsys.readouterr().err
    (root / "MANIFEST.sha256").unlink()  # a folder without a manifest: used, with a note
    with pytest.warns(UserWarning, match="could not be verified"):
        assert build_dataset("morphomnist", "test", root=root).labels_natural.loc[
            0, "thickness"] == pytest.approx(9.9)


@pytest.mark.skipif(not (DEEPSCM / "t10k-morpho.csv").exists(), reason="needs CDAE_DEEPSCM_DIR")
def test_the_deepscm_set_is_checked_against_its_published_md5s(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_dataset("deepscm_morphomnist", "test", root=DEEPSCM, limit=4)
    copy = tmp_path / "deepscm"
    shutil.copytree(DEEPSCM, copy)
    (copy / "t10k-morpho.csv").chmod(0o644)
    edit_first_row(copy / "t10k-morpho.csv", "thickness", 9.9)
    with pytest.raises(DatasetIntegrityError, match="t10k-morpho.csv .*differ from the published"):
        build_dataset("deepscm_morphomnist", "test", root=copy)
