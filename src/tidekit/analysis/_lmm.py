"""Linear mixed models with crossed random intercepts (rater, item, ...), fitted by REML.

The model is ``y = X b + Z_1 u_1 + ... + Z_k u_k + e`` with one random intercept per level of
each grouping factor, ``u_f ~ N(0, s_f^2)``, ``e ~ N(0, s^2)``: lme4's
``y ~ X + (1|rater) + (1|item)``. It follows lme4's profiled formulation (Bates et al. 2015,
JSS 67(1)): with relative scales ``theta_f = s_f / s`` the REML criterion depends on theta only
through ``A = L'Z'Z L + I``. Everything is computed from sufficient statistics gathered once
(O(n)), and the largest grouping factor is eliminated through its diagonal block, so each
evaluation costs only a dense Cholesky of the remaining levels; 100,000 ratings with hundreds
of raters and thousands of items fit in about a second on two cores.

Why not statsmodels ``MixedLM``: with crossed factors it treats the data as one group and
builds the full random-effects design, which takes minutes at this size. The tests check this
implementation against ``MixedLM`` on small data and against R's lme4/lmerTest.

Inference on fixed effects uses Satterthwaite degrees of freedom (as lmerTest does): the
asymptotic covariance of the variance parameters comes from the numerical Hessian of the REML
deviance, and the gradient of each contrast's variance from finite differences. Multi-df
F tests combine per-direction t tests as lmerTest's ``contest`` does.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
from scipy import linalg, optimize, sparse, stats

__all__ = ["LMMFit", "fit_lmm", "fstat_ddf"]


@dataclass
class _Stats:
    n: int
    XtX: np.ndarray
    Xty: np.ndarray
    yty: float
    d1: np.ndarray  # level counts of the eliminated factor
    U1: np.ndarray  # Z1'[X y]
    U2: np.ndarray  # ZR'[X y]
    ZRtZR: np.ndarray  # dense
    N: sparse.csr_matrix  # Z1'ZR
    sizes: list[int]  # levels per factor (eliminated first, then the rest in order)
    order: list[int]  # factor indices: order[0] is eliminated
    # Levels of the eliminated factor grouped by their count c: the diagonal block scales each
    # group by 1 / (theta^2 c + 1), so per-group sums make an evaluation independent of n.
    counts: np.ndarray  # distinct counts c
    mult: np.ndarray  # how many levels have count c
    K: np.ndarray  # (C, p+1, p+1): sum over the group of U1_l U1_l'
    H: np.ndarray  # (C, mR, p+1): N_c' U1_c
    G: np.ndarray | None  # (C, mR, mR): N_c' N_c, when it fits in memory (else use N)


_MAX_BUCKET_CELLS = 20_000_000  # 160 MB of float64 for the per-count Gram matrices


def _indicator(code: np.ndarray, m: int) -> sparse.csr_matrix:
    n = len(code)
    return sparse.csr_matrix((np.ones(n), (np.arange(n), code)), shape=(n, m))


def _gather(y: np.ndarray, X: np.ndarray, groups: list[np.ndarray]) -> _Stats:
    sizes_all = [int(g.max()) + 1 for g in groups]
    order = sorted(range(len(groups)), key=lambda i: -sizes_all[i])
    Xy = np.column_stack([X, y])
    Zs = [_indicator(groups[i], sizes_all[i]) for i in order]
    Z1 = Zs[0].T.tocsr()
    d1 = np.bincount(groups[order[0]], minlength=sizes_all[order[0]]).astype(float)
    U1 = np.asarray(Z1 @ Xy)
    if len(Zs) > 1:
        ZR = sparse.hstack(Zs[1:]).tocsr()
        ZRt = ZR.T.tocsr()
        U2 = np.asarray(ZRt @ Xy)
        ZRtZR = np.asarray((ZRt @ ZR).todense())
        N = (Z1 @ ZR).tocsr()
    else:
        U2 = np.zeros((0, Xy.shape[1]))
        ZRtZR = np.zeros((0, 0))
        N = sparse.csr_matrix((len(d1), 0))
    counts, inverse = np.unique(d1, return_inverse=True)
    C, mR, q = len(counts), ZRtZR.shape[0], Xy.shape[1]
    K = np.zeros((C, q, q))
    H = np.zeros((C, mR, q))
    G = np.zeros((C, mR, mR)) if C * mR * mR <= _MAX_BUCKET_CELLS else None
    for j in range(C):
        rows = np.nonzero(inverse == j)[0]
        K[j] = U1[rows].T @ U1[rows]
        if mR:
            Nc = N[rows]
            H[j] = np.asarray(Nc.T @ U1[rows])
            if G is not None:
                G[j] = (Nc.T @ Nc).toarray()
    return _Stats(n=len(y), XtX=X.T @ X, Xty=X.T @ y, yty=float(y @ y), d1=d1, U1=U1, U2=U2,
                  ZRtZR=ZRtZR, N=N, sizes=[sizes_all[i] for i in order], order=order,
                  counts=counts, mult=np.bincount(inverse, minlength=C).astype(float), K=K, H=H, G=G)


@dataclass
class _Eval:
    logdetA: float
    M: np.ndarray  # (p+1)x(p+1): [X y]'V*^{-1}[X y] (V* = V / sigma^2)


def _chol(M: np.ndarray) -> tuple[np.ndarray, bool]:
    """Cholesky factor; near-singular matrices (cancellation at extreme theta) get a tiny ridge."""
    try:
        return linalg.cho_factor(M, lower=True, check_finite=False)
    except linalg.LinAlgError:
        M = (M + M.T) / 2
        ridge = 1e-10 * max(float(np.trace(M)) / len(M), 1e-12)
        return linalg.cho_factor(M + ridge * np.eye(len(M)), lower=True, check_finite=False)


def _evaluate(st: _Stats, theta_ordered: np.ndarray) -> _Eval:
    """log|A| and [X y]' (I + Z L L' Z')^{-1} [X y] at relative scales ``theta`` (ordered)."""
    t1 = theta_ordered[0]
    w = 1.0 / (t1 * t1 * st.counts + 1.0)  # A11^-1 per count group
    logdet = float(-(st.mult * np.log(w)).sum())
    quad = (t1 * t1) * np.tensordot(w, st.K, 1)
    if st.ZRtZR.shape[0]:
        sR = np.repeat(theta_ordered[1:], st.sizes[1:])
        # Schur complement of the diagonal block: S = I + S_R (ZR'ZR - t1^2 N' diag(1/a) N) S_R
        if st.G is not None:
            NtDN = np.tensordot(w, st.G, 1)
        else:
            a = t1 * t1 * st.d1 + 1.0
            NtDN = (st.N.T @ st.N.multiply((1.0 / a)[:, None]).tocsr()).toarray()
        S = (st.ZRtZR - (t1 * t1) * NtDN) * np.outer(sR, sR)
        S[np.diag_indices_from(S)] += 1.0
        # W = U2 - A21 A11^-1 U1, with A21 = t1 S_R N'
        W = sR[:, None] * (st.U2 - (t1 * t1) * np.tensordot(w, st.H, 1))
        c = _chol(S)
        logdet += 2.0 * float(np.log(np.diag(c[0])).sum())
        quad += W.T @ linalg.cho_solve(c, W, check_finite=False)
    p = st.XtX.shape[0]
    full = np.empty((p + 1, p + 1))
    full[:p, :p] = st.XtX
    full[:p, p] = full[p, :p] = st.Xty
    full[p, p] = st.yty
    return _Eval(logdet, full - quad)


def _reml_parts(st: _Stats, theta: np.ndarray) -> tuple[float, float, float, np.ndarray, np.ndarray]:
    """(log|A|, log|RX'RX|, penalised RSS, beta, (RX'RX)^-1) at ``theta`` (ordered)."""
    ev = _evaluate(st, theta)
    p = st.XtX.shape[0]
    MXX, MXy, Myy = ev.M[:p, :p], ev.M[:p, p], ev.M[p, p]
    c = _chol(MXX)
    beta = linalg.cho_solve(c, MXy, check_finite=False)
    r2 = max(float(Myy - MXy @ beta), 1e-300)
    logdetX = 2.0 * float(np.log(np.diag(c[0])).sum())
    inv = linalg.cho_solve(c, np.eye(p), check_finite=False)
    return ev.logdetA, logdetX, r2, beta, inv


@dataclass
class LMMFit:
    """A fitted crossed random-intercept model (REML) with Satterthwaite inference."""

    names: list[str]
    beta: np.ndarray
    vcov: np.ndarray
    sigma2: float
    variances: dict[str, float]  # grouping factor -> variance of its intercepts
    deviance: float  # REML criterion (-2 restricted log-likelihood), as lme4 reports it
    n: int
    n_levels: dict[str, int]
    dropped: list[str] = field(default_factory=list)  # aliased fixed-effect columns
    converged: bool = True
    _st: _Stats | None = None
    _theta: np.ndarray | None = None  # ordered as _st.order
    _acov: np.ndarray | None = None
    _jac: np.ndarray | None = None

    @property
    def se(self) -> np.ndarray:
        return np.sqrt(np.diag(self.vcov))

    def _var_cov(self) -> np.ndarray:
        """Asymptotic covariance of (theta, sigma) from the Hessian of the REML deviance.

        dev(theta, sigma) = g(theta) + (n - p) log(2 pi sigma^2) + r2(theta) / sigma^2 with
        g = log|A| + log|RX'RX|: the sigma parts are analytic, the theta parts numerical.
        """
        if self._acov is None:
            assert self._st is not None and self._theta is not None
            st, theta, k = self._st, self._theta, len(self._theta)
            p = st.XtX.shape[0]
            cache: dict[bytes, tuple[float, float]] = {}

            def parts(t: np.ndarray) -> tuple[float, float]:
                key = t.tobytes()
                if key not in cache:
                    logA, logX, r2, _, _ = _reml_parts(st, t)
                    cache[key] = (logA + logX, r2)
                return cache[key]

            sigma = float(np.sqrt(self.sigma2))
            with _one_blas_thread():
                hg = _hessian(lambda t: parts(t)[0], theta)
                hr = _hessian(lambda t: parts(t)[1], theta)
                gr = _gradient(lambda t: parts(t)[1], theta)
            H = np.zeros((k + 1, k + 1))
            H[:k, :k] = hg + hr / sigma**2
            H[:k, k] = H[k, :k] = -2.0 * gr / sigma**3
            r2 = parts(theta)[1]
            H[k, k] = -2.0 * (st.n - p) / sigma**2 + 6.0 * r2 / sigma**4
            self._acov = 2.0 * np.linalg.pinv(H)
        return self._acov

    def _vcov_jacobian(self) -> np.ndarray:
        """d vcov / d phi for each variance parameter (k+1, p, p) (cached).

        vcov = sigma^2 (RX'RX)^-1(theta): the sigma derivative is analytic, theta's numerical.
        """
        if self._jac is None:
            assert self._st is not None and self._theta is not None
            theta, sigma = self._theta, float(np.sqrt(self.sigma2))
            jac = []
            with _one_blas_thread():
                for i in range(len(theta)):
                    h = _step(theta[i])
                    e = np.zeros(len(theta))
                    e[i] = h
                    jac.append(self.sigma2 * (_reml_parts(self._st, theta + e)[4]
                                              - _reml_parts(self._st, theta - e)[4]) / (2 * h))
            jac.append(2.0 * self.vcov / sigma)
            self._jac = np.array(jac)
        return self._jac

    def contrast(self, L: np.ndarray) -> tuple[float, float, float]:
        """Estimate, SE and Satterthwaite df of the linear combination ``L @ beta``."""
        L = np.asarray(L, float)
        est = float(L @ self.beta)
        var = float(L @ self.vcov @ L)
        resid_df = float(self.n - len(self.beta))
        if self._st is None:
            return est, float(np.sqrt(var)), resid_df
        grad = np.einsum("i,kij,j->k", L, self._vcov_jacobian(), L)
        denom = float(grad @ self._var_cov() @ grad)
        df = 2.0 * var * var / denom if denom > 0 else resid_df
        return est, float(np.sqrt(var)), float(min(max(df, 1.0), resid_df))

    def t_test(self, L: np.ndarray, level: float = 0.95) -> dict[str, float]:
        est, se, df = self.contrast(L)
        t = est / se if se > 0 else np.nan
        q = stats.t.ppf(0.5 + level / 2, df)
        return {"estimate": est, "se": se, "df": df, "t": t, "p": float(2 * stats.t.sf(abs(t), df)),
                "ci_low": est - q * se, "ci_high": est + q * se}

    def f_test(self, L: np.ndarray) -> dict[str, float]:
        """Multi-df F test of ``L @ beta = 0`` with Satterthwaite denominator df (lmerTest's method)."""
        L = np.atleast_2d(np.asarray(L, float))
        VL = L @ self.vcov @ L.T
        evals, P = np.linalg.eigh(VL)
        keep = evals > 1e-10 * max(evals.max(), 1e-300)
        evals, P = evals[keep], P[:, keep]
        q = len(evals)
        if q == 0:
            return {"F": np.nan, "df1": 0.0, "df2": np.nan, "p": np.nan}
        PL = P.T @ L
        t2 = (PL @ self.beta) ** 2 / evals
        F = float(t2.sum() / q)
        nus = np.array([self.contrast(row)[2] for row in PL])
        df2 = fstat_ddf(nus)
        return {"F": F, "df1": float(q), "df2": float(df2), "p": float(stats.f.sf(F, q, df2))}


def fstat_ddf(nus: np.ndarray, tol: float = 1e-8) -> float:
    """Denominator df of an F built from q t statistics with Satterthwaite df ``nus``, by
    lmerTest's rule (``get_Fstat_ddf``): one t gives its own df; (near) equal dfs give their mean;
    any df <= 2 gives 2; otherwise 2E / (E - q) with E = sum(nu / (nu - 2))."""
    nus = np.asarray(nus, float)
    if len(nus) == 1:
        return float(nus[0])
    if np.all(np.abs(np.diff(nus)) < tol):
        return float(nus.mean())
    if np.any(nus <= 2):
        return 2.0
    E = float(np.sum(nus / (nus - 2)))
    return 2 * E / (E - len(nus))


def _step(x: float) -> float:
    return 1e-4 * max(abs(x), 0.05)


def _gradient(f: object, x: np.ndarray) -> np.ndarray:
    g = np.zeros(len(x))
    for i in range(len(x)):
        h = _step(x[i])
        e = np.zeros(len(x))
        e[i] = h
        g[i] = (f(x + e) - f(x - e)) / (2 * h)  # type: ignore[operator]
    return g


def _hessian(f: object, x: np.ndarray) -> np.ndarray:
    k = len(x)
    H = np.zeros((k, k))
    f0 = f(x)  # type: ignore[operator]
    hs = [_step(v) * 10 for v in x]
    for i in range(k):
        ei = np.zeros(k)
        ei[i] = hs[i]
        H[i, i] = (f(x + ei) - 2 * f0 + f(x - ei)) / hs[i] ** 2  # type: ignore[operator]
        for j in range(i + 1, k):
            ej = np.zeros(k)
            ej[j] = hs[j]
            H[i, j] = H[j, i] = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (  # type: ignore[operator]
                4 * hs[i] * hs[j])
    return H


def _one_blas_thread() -> contextlib.AbstractContextManager[object]:
    """Limit BLAS to one thread: these matrices are small, and threads spin on a busy machine."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: only a speed-up
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _independent_columns(X: np.ndarray) -> np.ndarray:
    """Indices of a maximal set of linearly independent columns, kept in order."""
    _, R, piv = linalg.qr(X.T @ X, pivoting=True, mode="economic")
    diag = np.abs(np.diag(R))
    tol = diag.max() * max(X.shape) * np.finfo(float).eps * 1e3 if len(diag) else 0
    rank = int((diag > tol).sum())
    return np.sort(piv[:rank])


def _start(y: np.ndarray, gcodes: list[np.ndarray]) -> np.ndarray:
    """Moment-based starting values of theta: between-level variance over total variance."""
    vy = float(np.var(y)) or 1.0
    out = []
    for c in gcodes:
        cnt = np.bincount(c)
        means = np.bincount(c, weights=y) / np.maximum(cnt, 1)
        between = float(np.var(means[cnt > 0])) - vy / float(np.mean(cnt[cnt > 0]))
        out.append(np.sqrt(max(between, 0.01 * vy) / vy))
    return np.array(out)


def fit_lmm(y: np.ndarray, X: np.ndarray, names: list[str], groups: dict[str, np.ndarray]) -> LMMFit:
    """Fit ``y ~ X + (1|g) for g in groups`` by REML.

    ``groups`` maps a factor name to integer codes 0..m-1 (one per row). Factors with as many
    levels as rows are not identifiable and raise ValueError; aliased columns of ``X`` are
    dropped (listed in ``dropped``), as lme4 does.
    """
    y = np.asarray(y, float)
    X = np.asarray(X, float)
    n = len(y)
    keep = _independent_columns(X)
    dropped = [names[i] for i in range(X.shape[1]) if i not in set(keep.tolist())]
    X = X[:, keep]
    names = [names[i] for i in keep]
    gnames = list(groups)
    gcodes = [np.unique(np.asarray(groups[g]), return_inverse=True)[1].astype(np.int64) for g in gnames]
    for g, c in zip(gnames, gcodes, strict=True):
        if int(c.max()) + 1 >= n:
            raise ValueError(f"grouping factor '{g}' has a level per observation; it cannot be estimated")
    p = X.shape[1]
    if n - p < 2:
        raise ValueError(f"{n} ratings for {p} fixed effects: too few to estimate the model")
    if not gnames:
        beta, *_ = np.linalg.lstsq(X, y, rcond=None)
        r = y - X @ beta
        s2 = float(r @ r) / (n - p)
        return LMMFit(names, beta, s2 * np.linalg.inv(X.T @ X), s2, {}, np.nan, n, {}, dropped)
    st = _gather(y, X, gcodes)

    def crit(theta: np.ndarray) -> float:
        logA, logX, r2, _, _ = _reml_parts(st, np.abs(theta))
        return logA + logX + (n - p) * (1.0 + np.log(2 * np.pi * r2 / (n - p)))

    k = len(gnames)
    with _one_blas_thread():
        res = optimize.minimize(crit, _start(y, [gcodes[i] for i in st.order]), method="L-BFGS-B", bounds=[(0.0, 1e3)] * k,
                                options={"ftol": 1e-9, "gtol": 1e-5, "maxiter": 500})
        theta = np.abs(res.x)
        converged = bool(res.success)
        _logA, _logX, r2, beta, inv = _reml_parts(st, theta)
    s2 = r2 / (n - p)
    ordered_names = [gnames[i] for i in st.order]
    variances = {g: float((t * t) * s2) for g, t in zip(ordered_names, theta, strict=True)}
    return LMMFit(names=names, beta=beta, vcov=s2 * inv, sigma2=s2,
                  variances={g: variances[g] for g in gnames}, deviance=float(crit(theta)), n=n,
                  n_levels={g: int(c.max()) + 1 for g, c in zip(gnames, gcodes, strict=True)},
                  dropped=dropped, converged=converged, _st=st, _theta=theta)
