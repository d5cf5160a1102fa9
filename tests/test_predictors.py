"""Anti-causal predictors: learning the real Deep SCM Morpho-MNIST labels, saving, bad input."""

import numpy as np
import pandas as pd
import pytest
import torch
from corrupt import flip_tensor_bytes

from cdae.data.datasets import CausalImageDataset
from cdae.data.idx import read_idx
from cdae.evaluate import evaluators
from cdae.evaluate.predictors import AntiCausalPredictor, TrunkConfig, train_predictor
from cdae.files import ChecksumError
from cdae.graph import CausalGraph
from cdae.paths import deepscm_dir

MORPHO = CausalGraph.preset("morphomnist")


def load_deepscm():
    root = deepscm_dir()
    if not (root / "t10k-morpho.csv").exists():
        pytest.skip(f"Deep SCM Morpho-MNIST not found in {root} (CI sets CDAE_DEEPSCM_DIR)")
    images = read_idx(root / "t10k-images-idx3-ubyte.gz")
    labels = pd.read_csv(root / "t10k-morpho.csv")
    labels["digit"] = read_idx(root / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    return images, labels


@pytest.mark.slow
def test_predictor_reads_thickness_intensity_and_digit_from_real_images():
    images, labels = load_deepscm()
    predictor = train_predictor(images[:2000], labels[:2000], MORPHO, steps=200, batch_size=32,
                                progress=False)
    truth = labels[8000:9000].reset_index(drop=True)
    pred = predictor.predict(images[8000:9000])
    assert list(pred.columns) == MORPHO.nodes and len(pred) == 1000
    thickness_mae = np.abs(pred["thickness"] - truth["thickness"]).mean()
    intensity_mae = np.abs(pred["intensity"] - truth["intensity"]).mean()
    assert thickness_mae < 0.35 < truth["thickness"].std()  # sd 0.63 px
    assert intensity_mae < 0.4 * truth["intensity"].std()  # sd 48.5 grey levels
    assert np.mean(pred["digit"] == truth["digit"]) > 0.8


def toy_set(n=24, shape=(16, 16, 4)):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    labels = pd.DataFrame({"size": rng.normal(5.0, 2.0, n), "colour": rng.integers(0, 3, n)})
    graph = CausalGraph(edges=[("size", "colour")], categorical={"colour": 3})
    return images, labels, graph


def test_rgba_images_predictions_and_save_load_round_trip(tmp_path):
    images, labels, graph = toy_set()
    predictor = train_predictor(images, labels, graph, steps=3, batch_size=8, progress=False)
    pred = predictor.predict(images)
    assert list(pred.columns) == ["size", "colour"] and len(pred) == 24
    assert set(pred["colour"]) <= {0, 1, 2}
    assert predictor.features(images).shape == (24, 128)
    # float model-layout input (N, C, H, W) in [-1, 1] gives the same predictions
    as_float = torch.as_tensor(images, dtype=torch.float32).permute(0, 3, 1, 2) / 127.5 - 1
    pd.testing.assert_frame_equal(predictor.predict(as_float), pred)

    predictor.save(tmp_path / "predictor.pt")
    reloaded = AntiCausalPredictor.load(tmp_path / "predictor.pt")
    pd.testing.assert_frame_equal(reloaded.predict(images), pred)
    assert reloaded.graph == graph


def test_same_seed_same_predictor():
    images, labels, graph = toy_set()
    first = train_predictor(images, labels, graph, steps=3, batch_size=8, seed=7, progress=False)
    second = train_predictor(images, labels, graph, steps=3, batch_size=8, seed=7, progress=False)
    np.testing.assert_array_equal(first.features(images), second.features(images))


def test_bad_labels_and_images_give_clear_errors():
    images, labels, graph = toy_set()
    train = lambda imgs, labs: train_predictor(imgs, labs, graph, steps=1, progress=False)
    with pytest.raises(ValueError, match="lack the columns"):
        train(images, labels.drop(columns="size"))
    with pytest.raises(ValueError, match="match one to one"):
        train(images[:10], labels)
    with pytest.raises(ValueError, match="class indices 0..2"):
        train(images, labels.assign(colour=labels["colour"] + 5))
    with pytest.raises(ValueError, match="NaN"):
        train(images, labels.assign(size=np.nan))
    with pytest.raises(ValueError, match="config.channels=1"):
        train_predictor(images, labels, graph, steps=1, config=TrunkConfig(channels=1))
    predictor = train(images, labels)
    with pytest.raises(ValueError, match="4-channel"):
        predictor.predict(images[..., 0])


def test_a_cached_evaluator_with_flipped_bytes_is_retrained_not_used(tmp_path):
    images, labels, graph = toy_set()
    train = CausalImageDataset(images[..., 0], labels, graph)
    first = evaluators._load_or_train("predictor", "toy", train, 3, 0, False, tmp_path)
    (cached,) = tmp_path.glob("predictor-*.pt")
    flip_tensor_bytes(cached)
    with pytest.raises(ValueError, match="fails its content checksum"):
        AntiCausalPredictor.load(cached)
    with pytest.warns(RuntimeWarning, match="retraining"):
        again = evaluators._load_or_train("predictor", "toy", train, 3, 0, False, tmp_path)
    np.testing.assert_array_equal(again.features(images[..., :1]),
                                  first.features(images[..., :1]))


def test_shipped_evaluators_are_used_verified_and_never_retrained(tmp_path, monkeypatch):
    monkeypatch.setattr(evaluators, "pretrained_dir", lambda: tmp_path / "pretrained")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(40, 28, 28), dtype=np.uint8)
    labels = pd.DataFrame({"thickness": rng.normal(2.5, 0.6, 40),
                           "intensity": rng.normal(150, 40, 40), "digit": rng.integers(0, 10, 40)})
    train = CausalImageDataset(images, labels, MORPHO)
    cache = tmp_path / "cache"
    trained = evaluators._load_or_train("predictor", "toy", train, 2, 0, False, cache)
    [cached] = cache.glob("predictor-*.pt")
    [shipped] = evaluators.ship_evaluators("toy", [cached])
    cached.unlink()

    def no_training(*args, **kwargs):
        raise AssertionError("a shipped evaluator must not be retrained")

    monkeypatch.setattr(evaluators, "train_predictor", no_training)
    again = evaluators._load_or_train("predictor", "toy", train, 2, 0, False, cache)
    x = images[:5]
    pd.testing.assert_frame_equal(again.predict(x), trained.predict(x))
    data = bytearray(shipped.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shipped.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="git checkout -- .*toy/predictor-"):
        evaluators._load_or_train("predictor", "toy", train, 2, 0, False, cache)


def test_a_foreign_file_in_the_evaluator_cache_is_named_and_never_unpickled(tmp_path):
    import pickle

    class Payload:  # code a pickle would run
        def __reduce__(self):
            return (print, ("unpickled!",))

    foreign = tmp_path / "predictor-foreign.pt"
    torch.save({"weights": Payload()}, foreign)
    with pytest.raises(ValueError, match=r"not an evaluator saved by cdae.*delete it") as info:
        AntiCausalPredictor.load(foreign)
    assert "weights_only" not in str(info.value)
    (tmp_path / "junk.pt").write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(ValueError, match="not an evaluator saved by cdae"):
        AntiCausalPredictor.load(tmp_path / "junk.pt")
