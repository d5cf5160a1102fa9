"""DCI: disentanglement, completeness and informativeness of a code (Eastwood & Williams, 2018).

One regressor per factor predicts the factor from the code; the absolute contribution of each code
dimension to that prediction fills an importance matrix ``R`` (n_codes, n_factors). Then

    P_ij = R_ij / sum_k R_ik            (code i's importance spread over the factors)
    D_i  = 1 - H_K(P_i.)                (K = n_factors, entropy in base K)
    D    = sum_i rho_i D_i,             rho_i = sum_j R_ij / sum R
    P~_ij = R_ij / sum_k R_kj           (factor j's importance spread over the codes)
    C_j  = 1 - H_M(P~_.j)               (M = n_codes, entropy in base M)
    C    = sum_j rho'_j C_j,            rho'_j = sum_i R_ij / sum R

Regressors. The paper uses Lasso (linear) and random forests; this project has no scikit-learn,
so the regressors are numpy (group) Lassos on standardised codes and standardised targets,
fitted by accelerated proximal gradient (FISTA). A sparse fit matters: with least squares or
ridge, the noise in the coefficients of irrelevant dimensions leaks a little importance
everywhere, and the entropies above are very sensitive to such leakage.

* ``model="linear"`` (default): y ≈ sum_i beta_i x_i with penalty alpha sum_i |beta_i|.
  Importance R_ij = |beta_i|.
* ``model="additive"``: y ≈ sum_i g_i(x_i), each g_i a linear spline (knots at the training
  quartiles of x_i) with a group-Lasso penalty alpha sum_i ||beta_i||, so monotone and
  U-shaped dependences on one dimension count too. Importance R_ij = std over training samples of
  g_i(x_i); for the linear model this equals |beta_i|, so both options measure the same thing.
  Interactions between code dimensions are not modelled.

Categorical factors are fitted one-vs-rest: a regressor per class on the standardised 0/1
indicator; the factor's importance is the mean of the per-class importances and its prediction is
the class with the highest score.

Informativeness is measured on held-out samples (``1 - train_fraction`` of them): R² for a
continuous factor (1 = perfect, 0 = no better than the mean, can be negative) and accuracy for a
categorical one; the overall number is the mean over factors, so higher is better for all three.

Granularity: per code dimension (as in the authors' code), or per latent block (``block_size=d``:
the d consecutive dimensions of a block are summed, R_block = sum of its dimensions' importances),
which is the natural unit for a causal autoencoder with one block per variable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

_EPS = 1e-12
_MAX_ITERATIONS = 5000  # proximal gradient steps of the Lasso fit
_TOLERANCE = 1e-7  # stop when no coefficient moved more than this in a step


@dataclass(frozen=True)
class DCIResult:
    """Scores of :func:`dci`. ``importance``: DataFrame (codes or blocks x factors) of R;
    ``per_code`` D_i, ``per_factor`` C_j and held-out informativeness per factor."""

    disentanglement: float
    completeness: float
    informativeness: float
    importance: pd.DataFrame
    per_code: pd.Series
    per_factor: pd.DataFrame

    def to_frame(self) -> pd.DataFrame:
        """Long table: columns ``metric, item, score, value`` (``item`` is "all", a code or a
        factor; ``score`` names what ``value`` is: "1 - entropy", "r2" or "accuracy")."""
        rows = [
            ("disentanglement", "all", "1 - entropy", self.disentanglement),
            ("completeness", "all", "1 - entropy", self.completeness),
            ("informativeness", "all", "mean of r2/accuracy", self.informativeness),
        ]
        rows += [("disentanglement", code, "1 - entropy", v) for code, v in self.per_code.items()]
        for factor, row in self.per_factor.iterrows():
            rows.append(("completeness", factor, "1 - entropy", row["completeness"]))
            rows.append(("informativeness", factor, row["score"], row["informativeness"]))
        return pd.DataFrame(rows, columns=["metric", "item", "score", "value"])


def dci(
    codes: np.ndarray,
    factors: np.ndarray | pd.DataFrame,
    block_size: int | None = None,
    factor_names: Sequence[str] | None = None,
    categorical: Sequence[str] = (),
    train_fraction: float = 0.8,
    seed: int = 0,
    model: str = "linear",
    alpha: float = 0.02,
    code_names: Sequence[str] | None = None,
) -> DCIResult:
    """DCI scores of ``codes`` (N, n_codes) against ``factors`` (N, n_factors).

    Args:
        codes: latent codes, e.g. the encoder means or the causal-layer z.
        factors: ground-truth factors; a DataFrame gives the factor names.
        block_size: if given, score blocks of this many consecutive code dimensions.
        factor_names: names when ``factors`` is an array (default ``f0, f1, ...``).
        categorical: names of the categorical factors (values must be class indices).
        train_fraction: share of samples used to fit the regressors; the rest measure
            informativeness.
        seed: seed of the random train/held-out split.
        model: ``"linear"`` or ``"additive"`` (see the module docstring).
        alpha: (group) Lasso penalty on the standardised scale; importances below it are 0.
        code_names: names of the code dimensions, or of the blocks when ``block_size`` is
            given (e.g. ``graph.nodes``); default ``z0, z1, ...`` / ``block0, block1, ...``.
    """
    codes = np.asarray(codes, dtype=np.float64)
    names = _factor_names(factors, factor_names)
    factors = np.asarray(factors, dtype=np.float64)
    _check_inputs(codes, factors, names, categorical, block_size, train_fraction, model)
    train, test = _split(len(codes), train_fraction, seed)

    basis = _Basis.fit(codes[train], model)
    targets = [_Target.fit(factors[train, j], name in categorical) for j, name in enumerate(names)]
    y = np.concatenate([t.encode(factors[train, j]) for j, t in enumerate(targets)], axis=1)
    beta, intercept = _fit_group_lasso(basis(codes[train]), y, basis.sizes, alpha)  # all factors
    starts = np.cumsum([0] + [t.width for t in targets])
    group_starts = np.cumsum([0] + list(basis.sizes[:-1]))
    group_norms = np.sqrt(np.add.reduceat(beta**2, group_starts, axis=0))  # ||beta_i|| per column
    prediction = basis(codes[test]) @ beta + intercept

    importance = np.zeros((codes.shape[1], len(names)))
    rows = []
    for j, (name, target) in enumerate(zip(names, targets, strict=True)):
        columns = slice(starts[j], starts[j + 1])
        importance[:, j] = group_norms[:, columns].mean(axis=1)  # R_ij, mean over class columns
        rows.append((name, *target.score(prediction[:, columns], factors[test, j])))
    per_factor = pd.DataFrame(rows, columns=["factor", "score", "informativeness"])

    if block_size is not None:
        importance = importance.reshape(-1, block_size, len(names)).sum(axis=1)  # R_block
    if code_names is None:
        prefix = "z" if block_size is None else "block"
        code_names = [f"{prefix}{i}" for i in range(importance.shape[0])]
    elif len(code_names) != importance.shape[0]:
        raise ValueError(f"{len(code_names)} code_names for {importance.shape[0]} "
                         f"{'codes' if block_size is None else 'blocks'}")
    d_per_code, disentanglement = _disentanglement(importance)
    c_per_factor, completeness = _completeness(importance)
    per_factor["completeness"] = c_per_factor
    return DCIResult(
        disentanglement=disentanglement,
        completeness=completeness,
        informativeness=float(per_factor["informativeness"].mean()),
        importance=pd.DataFrame(importance, index=list(code_names), columns=names),
        per_code=pd.Series(d_per_code, index=list(code_names), name="disentanglement"),
        per_factor=per_factor.set_index("factor"),
    )


# ---------------------------------------------------------------------- the two scores
def _entropy(p: np.ndarray, base: int) -> np.ndarray:
    """H_base(p) = -sum_k p_k log_base p_k along the last axis (0 log 0 = 0)."""
    logs = np.log(np.where(p > 0, p, 1.0)) / np.log(base)
    return -(p * logs).sum(axis=-1)


def _disentanglement(r: np.ndarray) -> tuple[np.ndarray, float]:
    """D_i = 1 - H_K(P_i.) and D = sum_i rho_i D_i for R (n_codes, K)."""
    row_sums = r.sum(axis=1)
    p = r / np.maximum(row_sums, _EPS)[:, None]  # P_ij = R_ij / sum_k R_ik
    per_code = 1.0 - _entropy(p, base=r.shape[1])
    rho = row_sums / max(r.sum(), _EPS)  # rho_i = sum_j R_ij / sum R
    return per_code, float((rho * per_code).sum())


def _completeness(r: np.ndarray) -> tuple[np.ndarray, float]:
    """C_j = 1 - H_M(P~_.j) and C = sum_j rho'_j C_j for R (M, n_factors)."""
    per_factor, _ = _disentanglement(r.T)  # same formula with the roles of codes/factors swapped
    rho = r.sum(axis=0) / max(r.sum(), _EPS)  # rho'_j = sum_i R_ij / sum R
    return per_factor, float((rho * per_factor).sum())


# ---------------------------------------------------------------------- regressors
@dataclass
class _Basis:
    """Per-dimension basis phi_i(x_i), centred and whitened on the training codes so that each
    dimension's columns Q_i are orthonormal (Q_i^T Q_i / N = I). Then the partial function
    g_i(x_i) = Q_i beta_i has std_n g_i = ||beta_i||, which is the importance R_i."""

    mean: np.ndarray  # (n_codes,) standardisation of the codes
    std: np.ndarray  # (n_codes,)
    knots: np.ndarray | None  # (3, n_codes) spline knots; None for the linear model
    phi_mean: np.ndarray  # (n_codes, n_basis)
    whiten: list[np.ndarray]  # per dimension (n_basis, r_i), r_i <= n_basis

    @classmethod
    def fit(cls, x: np.ndarray, model: str) -> _Basis:
        mean, std = x.mean(axis=0), np.maximum(x.std(axis=0), _EPS)
        knots = None
        if model == "additive":
            knots = np.quantile((x - mean) / std, [0.25, 0.5, 0.75], axis=0)
        basis = cls(mean, std, knots, np.zeros(0), [])
        phi = basis.raw(x)
        basis.phi_mean = phi.mean(axis=0)
        basis.whiten = [_whitening(phi[:, i] - basis.phi_mean[i]) for i in range(x.shape[1])]
        return basis

    def raw(self, x: np.ndarray) -> np.ndarray:
        """(N, n_codes) -> (N, n_codes, n_basis): [x, relu(x - q25), relu(x - q50), relu(x - q75)]
        of the standardised x (only [x] for the linear model)."""
        x = (x - self.mean) / self.std
        if self.knots is None:
            return x[:, :, None]
        hinges = np.maximum(x[:, :, None] - self.knots.T[None], 0.0)
        return np.concatenate([x[:, :, None], hinges], axis=2)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Whitened features [Q_0, Q_1, ...]: (N, sum_i r_i)."""
        phi = self.raw(x) - self.phi_mean
        return np.concatenate([phi[:, i] @ w for i, w in enumerate(self.whiten)], axis=1)

    @property
    def sizes(self) -> np.ndarray:
        """r_i, the number of columns of each dimension's group."""
        return np.array([w.shape[1] for w in self.whiten])


def _whitening(block: np.ndarray) -> np.ndarray:
    """W (n_basis, r) with (block W)^T (block W) / N = I, dropping degenerate directions."""
    eigval, eigvec = np.linalg.eigh(block.T @ block / len(block))
    keep = eigval > 1e-8 * max(eigval.max(), _EPS)
    return eigvec[:, keep] / np.sqrt(eigval[keep])


@dataclass
class _Target:
    """A factor as regression targets: standardised value (1 column) or, for a categorical
    factor, standardised one-vs-rest class indicators (one column per class)."""

    mean: np.ndarray  # (width,)
    std: np.ndarray  # (width,)
    classes: np.ndarray | None  # class values of a categorical factor

    @classmethod
    def fit(cls, y: np.ndarray, is_categorical: bool) -> _Target:
        classes = np.unique(y) if is_categorical else None
        raw = _one_hot(y, classes)
        return cls(raw.mean(axis=0), np.maximum(raw.std(axis=0), _EPS), classes)

    @property
    def width(self) -> int:
        return len(self.mean)

    def encode(self, y: np.ndarray) -> np.ndarray:
        """(N,) -> standardised targets (N, width)."""
        return (_one_hot(y, self.classes) - self.mean) / self.std

    def score(self, prediction: np.ndarray, y: np.ndarray) -> tuple[str, float]:
        """Held-out accuracy (categorical: the class with the highest score) or
        R² = 1 - sum (y - y_hat)² / sum (y - mean y)²."""
        if self.classes is not None:
            return "accuracy", float(np.mean(self.classes[prediction.argmax(axis=1)] == y))
        y_hat = prediction[:, 0] * self.std[0] + self.mean[0]
        total = max(float(((y - y.mean()) ** 2).sum()), _EPS)
        return "r2", 1.0 - float(((y - y_hat) ** 2).sum()) / total


def _one_hot(y: np.ndarray, classes: np.ndarray | None) -> np.ndarray:
    """(N,) -> (N, 1) values, or (N, K) one-vs-rest class indicators when ``classes`` is given."""
    if classes is None:
        return y[:, None]
    return (y[:, None] == classes[None]).astype(np.float64)


def _fit_group_lasso(
    q: np.ndarray, y: np.ndarray, sizes: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """min_beta 1/(2N) ||y_t - mean y_t - sum_i Q_i beta_it||² + alpha sum_i ||beta_it||, one
    problem per target column t. q (N, p) with groups of ``sizes`` columns, y (N, T);
    returns beta (p, T) and the intercept (T,)."""
    q_mean, y_mean = q.mean(axis=0), y.mean(axis=0)
    q = q - q_mean
    gram, corr = q.T @ q / len(q), q.T @ (y - y_mean) / len(q)  # G (p, p), c (p, T)
    beta = _fista(gram, corr, sizes, alpha)
    return beta, y_mean - q_mean @ beta


def _fista(gram: np.ndarray, corr: np.ndarray, sizes: np.ndarray, alpha: float) -> np.ndarray:
    """Accelerated proximal gradient (FISTA with adaptive restart) on
    1/2 beta^T G beta - c^T beta + alpha sum_g ||beta_g||; returns beta (p, T)."""
    step = 1.0 / max(float(np.linalg.eigvalsh(gram).max()), _EPS)  # 1 / Lipschitz constant
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    beta = momentum = np.zeros_like(corr)
    t = 1.0
    for _ in range(_MAX_ITERATIONS):
        z = momentum - step * (gram @ momentum - corr)  # gradient step
        norms = np.sqrt(np.add.reduceat(z**2, starts, axis=0))  # ||z_g|| (n_groups, T)
        shrink = np.maximum(0.0, 1.0 - step * alpha / np.maximum(norms, _EPS))
        new = z * np.repeat(shrink, sizes, axis=0)  # group soft-threshold
        if np.sum((momentum - new) * (new - beta)) > 0:  # moving uphill: restart momentum
            t = 1.0
        t_next = (1.0 + np.sqrt(1.0 + 4.0 * t * t)) / 2.0
        momentum = new + (t - 1.0) / t_next * (new - beta)
        converged = np.abs(new - beta).max(initial=0.0) < _TOLERANCE
        beta, t = new, t_next
        if converged:
            break
    return beta


# ---------------------------------------------------------------------- input checks
def _factor_names(factors: np.ndarray | pd.DataFrame, names: Sequence[str] | None) -> list[str]:
    if isinstance(factors, pd.DataFrame):
        if names is not None and list(names) != list(factors.columns):
            raise ValueError("factor_names disagrees with the DataFrame's columns; pass only one")
        return [str(c) for c in factors.columns]
    width = np.shape(factors)[1] if np.ndim(factors) == 2 else 0
    return list(names) if names is not None else [f"f{j}" for j in range(width)]


def _check_inputs(
    codes: np.ndarray,
    factors: np.ndarray,
    names: list[str],
    categorical: Sequence[str],
    block_size: int | None,
    train_fraction: float,
    model: str,
) -> None:
    if codes.ndim != 2 or factors.ndim != 2:
        raise ValueError(
            f"codes and factors must be 2-D (N, n_codes) and (N, n_factors), got shapes "
            f"{codes.shape} and {factors.shape}; reshape a single factor with [:, None]"
        )
    if len(codes) != len(factors):
        raise ValueError(f"codes have {len(codes)} rows but factors have {len(factors)}; "
                         "they must describe the same samples")
    if len(names) != factors.shape[1]:
        raise ValueError(f"{len(names)} factor_names for {factors.shape[1]} factor columns")
    unknown = sorted(set(categorical) - set(names))
    if unknown:
        raise ValueError(f"categorical factors {unknown} are not among the factors {names}")
    if not (np.isfinite(codes).all() and np.isfinite(factors).all()):
        raise ValueError("codes and factors must be finite (found NaN or inf)")
    if factors.shape[1] < 2:
        raise ValueError("DCI needs at least 2 factors (entropies are in base n_factors)")
    if model not in ("linear", "additive"):
        raise ValueError(f"unknown model {model!r}; use 'linear' or 'additive'")
    if block_size is not None and (block_size < 1 or codes.shape[1] % block_size):
        raise ValueError(f"block_size={block_size} must divide the {codes.shape[1]} code "
                         "dimensions (one block of block_size dims per variable)")
    n_units = codes.shape[1] // (block_size or 1)
    if n_units < 2:
        raise ValueError("DCI needs at least 2 codes or blocks (entropies are in base n_codes)")
    n_train = int(round(train_fraction * len(codes)))
    if not 0 < train_fraction < 1 or n_train < 2 or len(codes) - n_train < 2:
        raise ValueError(f"train_fraction={train_fraction} with N={len(codes)} leaves "
                         f"{n_train} training and {len(codes) - n_train} held-out samples; "
                         "use 0 < train_fraction < 1 and more samples")


def _split(n: int, train_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    n_train = int(round(train_fraction * n))
    return order[:n_train], order[n_train:]
