"""FID and KID against closed forms and brute force; a feature net trained on real MNIST digits."""

import numpy as np
import pytest
from scipy.stats import ortho_group

from cdae.data.mnist import MnistNotFoundError, load_mnist
from cdae.evaluate import realism
from cdae.evaluate.realism import FeatureNet, fid, kid, realism_table, train_feature_net


def gaussian(n, mean, variances, rotation, seed):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, len(variances))) * np.sqrt(variances) + mean) @ rotation.T


def test_fid_of_a_set_with_itself_is_zero():
    x = np.random.default_rng(0).normal(size=(500, 8))
    assert abs(fid(x, x)) < 1e-6


def test_fid_matches_the_closed_form_for_gaussians():
    # for covariances Q diag(a) Q^T and Q diag(b) Q^T: FID = ||mu_a - mu_b||² + sum (√a - √b)²
    q = ortho_group.rvs(4, random_state=1)
    var_a, var_b = np.array([1.0, 2.0, 0.5, 4.0]), np.array([3.0, 1.0, 0.5, 1.0])
    shift = np.array([1.0, -1.0, 0.5, 0.0])
    a = gaussian(40_000, 0.0, var_a, q, seed=2)
    b = gaussian(40_000, shift, var_b, q, seed=3)
    analytic = (shift**2).sum() + ((np.sqrt(var_a) - np.sqrt(var_b)) ** 2).sum()
    assert fid(a, b) == pytest.approx(analytic, rel=0.03)
    same = fid(a, gaussian(40_000, 0.0, var_a, q, seed=4))
    assert same < 0.01 < 0.1 * analytic


def trace_sqrt_product(cov_a, cov_b):
    """Tr (S_a S_b)^1/2 = sum of sqrt(eigenvalues of S_a^1/2 S_b S_a^1/2), a symmetric route."""
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    return np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum()


def test_fid_with_singular_covariances_matches_a_symmetric_computation():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(10, 30)), rng.normal(size=(10, 30)) + 1.0  # N < d: rank-deficient
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = (((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b)
                - 2 * trace_sqrt_product(cov_a, cov_b))
    assert fid(a, b) == pytest.approx(expected, rel=1e-6)


def test_fid_retries_with_a_regularised_covariance_when_sqrtm_fails(monkeypatch):
    real_sqrtm, calls = realism.linalg.sqrtm, []

    def failing_once(matrix):
        calls.append(matrix)
        return np.full_like(matrix, np.nan) if len(calls) == 1 else real_sqrtm(matrix)

    monkeypatch.setattr(realism.linalg, "sqrtm", failing_once)
    x = np.random.default_rng(0).normal(size=(200, 3))
    with pytest.warns(RuntimeWarning, match="ill-conditioned"):
        value = fid(x, x + 2.0)
    assert len(calls) == 2 and value == pytest.approx(12.0, rel=1e-4)  # ||shift||² = 3 * 2²


def brute_force_mmd2(x, y):
    k = lambda u, v: (u @ v / len(u) + 1.0) ** 3
    m = len(x)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / m**2
    return xx + yy - 2 * xy


def test_kid_with_one_full_subset_equals_the_unbiased_mmd():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(25, 3)), rng.normal(size=(25, 3)) + 0.3
    result = kid(x, y, subsets=1, subset_size=25)
    assert result.mean == pytest.approx(brute_force_mmd2(x, y)) and result.std == 0.0


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(1000, 16)), rng.normal(size=(1000, 16))
    shifted = rng.normal(size=(1000, 16)) + 0.5
    same, different = kid(a, b, subsets=20, subset_size=200), kid(a, shifted, subsets=20,
                                                                   subset_size=200)
    assert abs(same.mean) < 0.02 and different.mean > 0.2
    assert different.mean > 5 * different.std


def test_bad_feature_arrays_give_clear_errors():
    x = np.zeros((10, 4))
    with pytest.raises(ValueError, match="same d"):
        fid(x, np.zeros((10, 5)))
    with pytest.raises(ValueError, match="at least 2 samples"):
        kid(x, np.zeros((1, 4)))
    with pytest.raises(ValueError, match="1-D integer class labels"):
        train_feature_net(np.zeros((4, 8, 8), np.uint8), np.zeros(4))


@pytest.mark.slow
def test_feature_net_learns_real_digits_and_separates_real_from_noise(tmp_path):
    try:
        digits = load_mnist("test")
    except MnistNotFoundError:
        pytest.skip("MNIST test set not found (CI sets CDAE_MNIST_DIR=../shared/data/mnist)")
    train, held_out = digits.images[:1000], digits.images[1000:2000]
    net = train_feature_net(train, digits.labels[:1000], steps=100, batch_size=32)
    accuracy = np.mean(net.predictor.predict(held_out)["label"] == digits.labels[1000:2000])
    assert accuracy > 0.5  # chance is 0.1

    noise = np.random.default_rng(0).integers(0, 256, size=(1000, 28, 28), dtype=np.uint8)
    table = realism_table(net, train, {"held-out real": held_out, "noise": noise},
                          subsets=10, subset_size=200).set_index(["model", "metric"])["value"]
    assert table["held-out real", "fid"] < 0.2 * table["noise", "fid"]
    assert table["held-out real", "kid"] < 0.2 * table["noise", "kid"]

    net.save(tmp_path / "features.pt")
    reloaded = FeatureNet.load(tmp_path / "features.pt")
    np.testing.assert_allclose(reloaded.features(held_out[:50]), net.features(held_out[:50]))
