"""Inter-rater agreement: Krippendorff's alpha (ordinal and interval) with a bootstrap CI.

The point estimate comes from the ``krippendorff`` package. The bootstrap resamples items
(units) with replacement; because alpha depends on the data only through the coincidence
matrix, which is a sum of per-item contributions, all resamples are computed at once as one
matrix product (weights x per-item coincidences), then alpha is evaluated per resample with the
distance metric rebuilt from that resample's marginals (the ordinal metric depends on them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

from tidekit.analysis._results import AgreementResult

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["agreement", "alpha_from_coincidences", "unit_coincidences", "value_counts", "value_domain"]

Metric = Literal["ordinal", "interval", "nominal"]


def value_domain(values: np.ndarray, scale: tuple[int, int]) -> np.ndarray:
    """The values alpha distinguishes: every whole scale point, plus any other value that occurs
    (half points stay half points: ratings are never rounded)."""
    points = np.arange(scale[0], scale[1] + 1, dtype=float)
    return np.union1d(points, values[(values >= scale[0]) & (values <= scale[1])])


def value_counts(df: pd.DataFrame, column: str, scale: tuple[int, int],
                 domain: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Items x values count matrix of pairable items (>= 2 ratings), and the raters involved.

    The columns are ``domain`` (default: :func:`value_domain` of the data), so non-integer
    ratings are counted as the values they are.
    """
    from tidekit.analysis._design import codes

    sub = df[["item", "rater", column]].dropna()
    values = sub[column].to_numpy(float)
    ok = (values >= scale[0]) & (values <= scale[1])
    sub, values = sub[ok], values[ok]
    domain = value_domain(values, scale) if domain is None else domain
    code, _ = codes(sub["item"])
    vc = np.zeros((int(code.max()) + 1 if len(code) else 0, len(domain)))
    np.add.at(vc, (code, np.searchsorted(domain, values)), 1)
    pairable = vc.sum(1) >= 2
    raters = int(sub.loc[pairable[code], "rater"].nunique()) if len(code) else 0
    return vc[pairable], raters


def unit_coincidences(vc: np.ndarray) -> np.ndarray:
    """Per-item coincidence contributions, flattened: (items, V*V)."""
    m = vc.sum(1)
    outer = vc[:, :, None] * vc[:, None, :]
    idx = np.arange(vc.shape[1])
    outer[:, idx, idx] -= vc
    return (outer / (m - 1)[:, None, None]).reshape(len(vc), -1)


def _delta2(n_c: np.ndarray, metric: Metric, domain: np.ndarray | None = None) -> np.ndarray:
    """Squared distances between values; n_c (..., V) marginals for the ordinal metric, ``domain``
    the values themselves for the interval metric (default: consecutive integers)."""
    V = n_c.shape[-1]
    i, j = np.meshgrid(np.arange(V), np.arange(V), indexing="ij")
    if metric == "interval":
        v = np.arange(V, dtype=float) if domain is None else np.asarray(domain, float)
        return np.broadcast_to((v[i] - v[j]) ** 2, (*n_c.shape[:-1], V, V))
    if metric == "nominal":
        return np.broadcast_to((i != j).astype(float), (*n_c.shape[:-1], V, V))
    cum = np.cumsum(n_c, axis=-1)
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    # sum_{g=lo}^{hi} n_g - (n_lo + n_hi)/2
    s = cum[..., hi] - np.where(lo > 0, cum[..., np.maximum(lo - 1, 0)], 0.0)
    s = s - (n_c[..., lo] + n_c[..., hi]) / 2
    return s**2


def alpha_from_coincidences(o: np.ndarray, metric: Metric, domain: np.ndarray | None = None) -> np.ndarray:
    """Alpha for one or many coincidence matrices ``o`` of shape (..., V, V) over ``domain``."""
    n_c = o.sum(-1)
    n = n_c.sum(-1)
    d2 = _delta2(n_c, metric, domain)
    d_o = (o * d2).sum((-1, -2)) / n
    d_e = (n_c[..., :, None] * n_c[..., None, :] * d2).sum((-1, -2)) / (n * (n - 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1.0 - d_o / d_e


def agreement(df: pd.DataFrame, column: str, label: str, scale: tuple[int, int], metric: Metric,
              n_boot: int, seed: int, level: float = 0.95) -> AgreementResult:
    """Krippendorff's alpha of ``column`` across raters, items as units, with a bootstrap CI."""
    import krippendorff

    sub = df[column].dropna().to_numpy(float)
    domain = value_domain(sub, scale)
    vc, raters = value_counts(df, column, scale, domain)
    base = {"rating": label, "level_of_measurement": metric, "n_items": len(vc), "n_raters": raters,
            "n_ratings": int(vc.sum())}
    if len(vc) < 2:
        return AgreementResult(alpha=None, note="fewer than two items were rated by two or more raters", **base)
    if (vc.sum(0) > 0).sum() < 2:
        return AgreementResult(alpha=None, note="every rating has the same value: alpha is undefined", **base)
    alpha = float(krippendorff.alpha(value_counts=vc, value_domain=domain.tolist(), level_of_measurement=metric))
    lo = hi = None
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        C = unit_coincidences(vc)
        V = vc.shape[1]
        boots = []
        for start in range(0, n_boot, 200):  # bounded memory
            b = min(200, n_boot - start)
            W = rng.multinomial(len(vc), np.full(len(vc), 1 / len(vc)), size=b).astype(float)
            boots.append(alpha_from_coincidences((W @ C).reshape(b, V, V), metric, domain))
        est = np.concatenate(boots)
        est = est[np.isfinite(est)]
        if len(est):
            lo, hi = (float(x) for x in np.quantile(est, [(1 - level) / 2, (1 + level) / 2]))
    return AgreementResult(alpha=alpha, ci_low=lo, ci_high=hi, ci_level=level if n_boot else None,
                           bootstrap=n_boot, **base)
