"""Label normaliser, CausalImageDataset, the dataset registry and the generic folder dataset."""

from __future__ import annotations

import importlib.util
import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from cdae.data.datasets import (
    CausalImageDataset,
    LabelNormalizer,
    available_datasets,
    build_dataset,
    build_splits,
    convert_channels,
    images_to_nchw,
    make_labelled_mask,
    read_image_folder,
    register_dataset,
    resize_images,
)
from cdae.graph import CausalGraph

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


# ---------------------------------------------------------------------------- normaliser


def test_fit_uses_mean_and_population_std_and_leaves_classes_alone():
    _, labels = morpho_like(200)
    norm = LabelNormalizer.fit(labels, MORPHO)
    assert norm.variables == ["thickness", "intensity", "digit"]
    np.testing.assert_allclose(norm.shift[:2], labels[["thickness", "intensity"]].mean())
    np.testing.assert_allclose(norm.scale[:2], labels[["thickness", "intensity"]].std(ddof=0))
    assert (norm.shift[2], norm.scale[2]) == (0.0, 1.0)
    normed = norm.normalize(labels[MORPHO.nodes].to_numpy())
    np.testing.assert_allclose(normed[:, :2].mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(normed[:, :2].std(axis=0), 1.0)
    np.testing.assert_array_equal(normed[:, 2], labels["digit"])


def test_round_trip_numpy_and_torch_keep_type_dtype_and_shape():
    norm = LabelNormalizer(["a", "b"], [2.0, -1.0], [0.5, 4.0])
    natural = np.array([[[2.5, 3.0], [1.0, -1.0]]])  # (1, 2, 2): any leading shape
    normed = norm.normalize(natural)
    np.testing.assert_allclose(normed, [[[1.0, 1.0], [-2.0, 0.0]]])
    np.testing.assert_allclose(norm.denormalize(normed), natural)
    tensor = torch.tensor(natural, dtype=torch.float32)
    back = norm.denormalize(norm.normalize(tensor))
    assert isinstance(back, torch.Tensor) and back.dtype == torch.float32
    torch.testing.assert_close(back, tensor)
    assert norm.normalize(torch.tensor([[3, 1]])).dtype == torch.float32  # ints become floats
    assert norm.normalize_value("a", 3.0) == pytest.approx(2.0)
    assert norm.denormalize_value("b", 0.5) == pytest.approx(1.0)


def test_normaliser_dict_round_trip_through_json():
    _, labels = morpho_like(50)
    norm = LabelNormalizer.fit(labels, MORPHO)
    again = LabelNormalizer.from_dict(json.loads(json.dumps(norm.to_dict())))
    assert again == norm
    assert again != LabelNormalizer(norm.variables, norm.shift, norm.scale * [2, 1, 1],
                                    norm.categorical)
    np.testing.assert_allclose(again.normalize(labels[MORPHO.nodes].to_numpy()),
                               norm.normalize(labels[MORPHO.nodes].to_numpy()))


def test_constant_label_and_bad_parameters_raise():
    _, labels = morpho_like(20)
    labels["thickness"] = 2.5
    with pytest.raises(ValueError, match=r"\['thickness'\] are constant"):
        LabelNormalizer.fit(labels, MORPHO)
    with pytest.raises(ValueError, match="scale must be positive"):
        LabelNormalizer(["a", "b"], [0, 0], [1.0, 0.0])
    with pytest.raises(ValueError, match="2 finite numbers"):
        LabelNormalizer(["a", "b"], [0], [1, 1])
    with pytest.raises(ValueError, match="shift 0 and scale 1"):
        LabelNormalizer(["a", "d"], [0, 1], [1, 1], {"d": 10})
    norm = LabelNormalizer(["a", "b"], {"b": 1.0, "a": 0.0}, {"a": 1.0, "b": 2.0})
    np.testing.assert_array_equal(norm.shift, [0.0, 1.0])
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 2\)"):
        norm.normalize(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="unknown variable 'c'"):
        norm.normalize_value("c", 1.0)


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


def test_resize_keeps_constants_and_linear_ramps():
    flat = torch.full((2, 3, 96, 96), 77, dtype=torch.uint8)
    assert torch.equal(resize_images(flat, 64, chunk=1), torch.full((2, 3, 64, 64), 77,
                                                                    dtype=torch.uint8))
    # f(x) = 2x along the width: away from the borders the (symmetric) filter keeps f at the new
    # pixel centres, x_src = (j + 0.5) * 96 / 64 - 0.5
    ramp = (2 * torch.arange(96)).to(torch.uint8).expand(1, 1, 96, 96)
    small = resize_images(ramp, 64, chunk=1)
    centres = (torch.arange(64) + 0.5) * 1.5 - 0.5
    torch.testing.assert_close(small[0, 0, 10, 3:-3].float(), (2 * centres[3:-3]).round(),
                               atol=1.0, rtol=0)
    assert resize_images(ramp, (4, 8)).shape == (1, 1, 4, 8)
    with pytest.raises(ValueError, match="size"):
        resize_images(ramp, 0)


def test_channel_conversions():
    rgba = torch.tensor([255, 0, 0, 9], dtype=torch.uint8).view(1, 4, 1, 1)
    assert convert_channels(rgba, 1).item() == round(0.299 * 255)  # red's luma
    grey = torch.tensor([[[[40]]]], dtype=torch.uint8)
    assert convert_channels(grey, 3).flatten().tolist() == [40, 40, 40]
    with pytest.raises(ValueError, match="cannot convert 1-channel images to channels=4"):
        convert_channels(grey, 4)


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
        from cdae.data import datasets

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


# ---------------------------------------------------------------------------- folder


def write_folder(folder: Path, n: int, mode: str = "RGB", split: str | None = None) -> pd.DataFrame:
    """n random PNG images + labels.csv (+ split column) in ``folder``."""
    rng = np.random.default_rng(n)
    folder.mkdir(parents=True, exist_ok=True)
    channels = {"L": (), "RGB": (3,), "RGBA": (4,)}[mode]
    rows = []
    for i in range(n):
        pixels = rng.integers(0, 256, size=(20, 24, *channels), dtype=np.uint8)
        Image.fromarray(pixels, mode=mode).save(folder / f"img_{i}.png")
        rows.append({"file": f"img_{i}.png", "size": rng.normal(), "colour": rng.normal(),
                     "kind": i % 3})
    table = pd.DataFrame(rows)
    if split is not None:
        table["split"] = ["train" if i % 2 == 0 else "test" for i in range(n)]
    table.to_csv(folder / "labels.csv", index=False)
    return table


GRAPH_SPEC = {"nodes": ["kind", "size", "colour"], "edges": [["size", "colour"]],
              "categorical": {"kind": 3}}


def test_folder_with_split_folders_and_graph_json(tmp_path):
    table = write_folder(tmp_path / "train", 6)
    write_folder(tmp_path / "test", 3)
    (tmp_path / "graph.json").write_text(json.dumps(GRAPH_SPEC))
    train = build_dataset("folder", "train", root=tmp_path)
    test = build_dataset("folder", "test", root=tmp_path, normalizer=train.normalizer)
    assert (len(train), len(test)) == (6, 3)
    assert train.image_shape == (3, 20, 24) and train.variables == ["kind", "size", "colour"]
    pixels = np.asarray(Image.open(tmp_path / "train" / "img_4.png"))
    np.testing.assert_array_equal(train.images_uint8[4].permute(1, 2, 0).numpy(), pixels)
    assert train[4][1][0].item() == table.loc[4, "kind"]
    assert "file" not in train.labels_natural.columns


def test_folder_with_split_column_yaml_graph_and_whole_folder(tmp_path):
    write_folder(tmp_path, 8, mode="L", split="yes")
    (tmp_path / "graph.yaml").write_text(yaml.safe_dump(GRAPH_SPEC))
    test = build_dataset("folder", "test", root=tmp_path, limit=None)
    assert len(test) == 4 and test.image_shape == (1, 20, 24)
    with pytest.raises(ValueError, match=r"no rows with split == 'val'; its splits are"):
        build_dataset("folder", "val", root=tmp_path)
    (tmp_path / "graph.yaml").unlink()
    graph = CausalGraph.from_dict(GRAPH_SPEC)
    images, labels, same = read_image_folder(tmp_path / ".", "train", graph=graph, limit=2)
    assert images.shape == (2, 20, 24) and same is graph and list(labels.index) == [0, 1]
    write_folder(tmp_path / "whole", 3, mode="RGBA")
    whole = build_dataset("folder", "all", root=tmp_path / "whole", graph=GRAPH_SPEC, channels=3)
    assert whole.image_shape == (3, 20, 24)
    with pytest.raises(ValueError, match="split='all'"):
        build_dataset("folder", "train", root=tmp_path / "whole", graph=GRAPH_SPEC)


def test_folder_faults_are_named(tmp_path):
    table = write_folder(tmp_path, 8)
    spec = tmp_path / "my_graph.json"
    spec.write_text(json.dumps(GRAPH_SPEC))
    with pytest.raises(FileNotFoundError, match="graph.json"):
        build_dataset("folder", "all", root=tmp_path)
    with pytest.raises(ValueError, match="needs root"):
        build_dataset("folder", "all", graph=spec)
    for i in range(7):
        (tmp_path / f"img_{i}.png").unlink()
    listed = r"7 image files .* \['img_0.png'.*'img_4.png'\] \.\.\."
    with pytest.raises(FileNotFoundError, match=listed):
        build_dataset("folder", "all", root=tmp_path, graph=spec)
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "img_0.png")
    table.iloc[[0, 7]].to_csv(tmp_path / "labels.csv", index=False)
    with pytest.raises(ValueError, match=r"img_7.png is \(20, 24, 3\).*img_0.png is \(20, 20, 3\)"):
        build_dataset("folder", "all", root=tmp_path, graph=spec)
    table.drop(columns=["file"]).to_csv(tmp_path / "labels.csv", index=False)
    with pytest.raises(ValueError, match="needs a 'file' column"):
        build_dataset("folder", "all", root=tmp_path, graph=spec)
    with pytest.raises(FileNotFoundError, match="no labels.csv"):
        build_dataset("folder", "all", root=tmp_path / "nowhere", graph=spec)


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
    if not os.environ.get("CDAE_MNIST_DIR"):
        pytest.skip("needs CDAE_MNIST_DIR for the MNIST test digits")
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
