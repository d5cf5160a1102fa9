"""DCI on codes whose disentanglement is known by construction."""

import numpy as np
import pandas as pd
import pytest

from cdae.evaluate.dci import dci


def _factors(n=2000, k=4, seed=0):
    return np.random.default_rng(seed).normal(size=(n, k))


def _hadamard(k):
    h = np.array([[1.0]])
    while len(h) < k:
        h = np.block([[h, h], [h, -h]])
    return h / np.sqrt(k)


@pytest.mark.parametrize("model", ["linear", "additive"])
def test_permuted_identity_code_is_disentangled_and_complete(model):
    factors = _factors()
    perm = np.array([2, 0, 3, 1])
    codes = factors[:, perm] + 0.05 * np.random.default_rng(1).normal(size=factors.shape)
    result = dci(codes, factors, model=model)
    assert result.disentanglement > 0.95 and result.completeness > 0.95
    assert result.informativeness > 0.98
    # code i carries factor perm[i]: the importance matrix is a permutation matrix
    assert (result.importance.to_numpy().argmax(axis=1) == perm).all()


def test_code_mixing_every_factor_equally_is_entangled():
    factors = _factors()
    codes = factors @ _hadamard(4)  # every code dim = (±f0 ± f1 ± f2 ± f3) / 2
    result = dci(codes, factors)
    assert result.disentanglement < 0.1 and result.completeness < 0.1
    assert result.informativeness > 0.98  # all the information is still there, just mixed


def test_partial_mixing_lies_in_between():
    factors = _factors()
    rotation = np.eye(4) * 0.8 + 0.2 * _hadamard(4)
    middle = dci(factors @ rotation, factors).disentanglement
    assert 0.2 < middle < 0.9


def test_uninformative_code_has_low_informativeness():
    factors = _factors()
    codes = np.random.default_rng(5).normal(size=(2000, 4))
    assert abs(dci(codes, factors).informativeness) < 0.05


def test_block_granularity_with_each_factor_copied_into_its_own_block():
    rng = np.random.default_rng(2)
    factors, d = _factors(k=3), 4
    mixing = rng.normal(size=(3, 1, d))  # each block holds d random multiples of its factor
    blocks = [factors[:, [j]] * mixing[j] for j in range(3)]
    codes = np.concatenate(blocks, axis=1) + 0.05 * rng.normal(size=(2000, 3 * d))
    per_block = dci(codes, factors, block_size=d, code_names=["a", "b", "c"])
    assert per_block.importance.shape == (3, 3)
    assert list(per_block.per_code.index) == ["a", "b", "c"]
    assert per_block.disentanglement > 0.95 and per_block.completeness > 0.95
    # per dimension the code is redundant (d dims per factor), so completeness drops
    assert dci(codes, factors).completeness < per_block.completeness - 0.2


def test_nonlinear_dependence_needs_the_additive_model():
    codes = _factors(k=2)
    factors = np.stack([codes[:, 0] ** 2, codes[:, 1]], axis=1)  # f0 = z0², U-shaped in z0
    linear, additive = dci(codes, factors), dci(codes, factors, model="additive")
    assert additive.per_factor.loc["f0", "informativeness"] > 0.9
    assert linear.per_factor.loc["f0", "informativeness"] < 0.1


def test_categorical_factor_uses_one_vs_rest_and_accuracy():
    rng = np.random.default_rng(3)
    digit = rng.integers(0, 10, size=3000)
    thickness = rng.gamma(10, 0.2, size=3000)
    labels = pd.DataFrame({"digit": digit, "thickness": thickness})
    onehot = np.eye(10)[digit]
    codes = np.concatenate([onehot + 0.1 * rng.normal(size=onehot.shape),
                            thickness[:, None] + 0.05 * rng.normal(size=(3000, 1))], axis=1)
    result = dci(codes, labels, block_size=None, categorical=["digit"])
    assert result.per_factor.loc["digit", "score"] == "accuracy"
    assert result.per_factor.loc["digit", "informativeness"] > 0.95
    assert result.per_factor.loc["thickness", "score"] == "r2"
    assert result.disentanglement > 0.9
    frame = result.to_frame()
    assert set(frame.columns) == {"metric", "item", "score", "value"}
    overall = frame[frame["item"] == "all"].set_index("metric")["value"]
    assert overall["disentanglement"] == pytest.approx(result.disentanglement)


def test_bad_inputs_give_clear_errors():
    factors = _factors()
    with pytest.raises(ValueError, match="same samples"):
        dci(factors[:10], factors)
    with pytest.raises(ValueError, match="2-D"):
        dci(factors[:, 0], factors)
    with pytest.raises(ValueError, match="must divide"):
        dci(np.ones((2000, 6)), factors, block_size=4)
    with pytest.raises(ValueError, match="not among the factors"):
        dci(factors, factors, categorical=["digit"])
    with pytest.raises(ValueError, match="at least 2 factors"):
        dci(factors, factors[:, :1])
    with pytest.raises(ValueError, match="2 code_names for 4 codes"):
        dci(factors, factors, code_names=["a", "b"])
    with pytest.raises(ValueError, match="train_fraction"):
        dci(factors[:5], factors[:5], train_fraction=0.9)
    with pytest.raises(ValueError, match="NaN"):
        dci(np.full_like(factors, np.nan), factors)
