"""Rounding-error bounds: where every tolerance of the suite comes from.

A test that compares a float32 (or float64) computation with a float64
reference, or two implementations with each other, asserts the difference
is within a bound for that computation, not within a number measured once on
one CPU: XLA sums in another order under another instruction set (AVX-512,
AVX2, SSE4.2), and the rounding differs with it.

Every sum or dot product of ``n`` terms is bounded by Higham & Mary's (2019,
SIAM J. Sci. Comput. 41(5), A2815, Theorem 3.1) probabilistic constant

    gamma(n) = exp(LAMBDA * sqrt(n) * u + n * u**2 / (1 - u)) - 1,   u = eps / 2,

which holds for any summation order (blocked, pairwise, vectorised, with or
without FMA) with probability at least ``1 - 2 n exp(-LAMBDA**2 (1 - u)**2 / 2)``
under their model of independent, mean-zero rounding errors; with
``LAMBDA = 8`` that is a failure chance below ``3e-14 * n`` per sum. The
worst-case constant ``n u / (1 - n u)`` is 100-1000x looser than any float32
sum shows, and would leave tolerances that catch nothing.

The bounds are first order in ``u`` only where the expansion is proven to
converge (each is ``inf`` where it is not), and carry the data's condition:
how far each row's centred spread is below its magnitude (moment sums over
few, mostly silent nodes lose digits; that is what the sparse test sets
exercise).

Where the suite still states a fixed tolerance, it is one of two kinds.
float64 comparisons of results of size about 1 at 1e-8 .. 1e-12 (node
scores, slopes, p-values, closed forms): the float64 bound of a sum of up
to 1e5 terms, ``gamma(1e5, float64) = 2.8e-13``, times the conditions of
those inputs, stays below them. Comparisons of training runs (another
convolution formulation, another device count): rounding differences
within one step are bounded (``test_model.py``), but SGD carries them
through a nonlinear trajectory that no a-priori bound follows; those tests
say what they accept and why.
"""

from __future__ import annotations

import math

import numpy as np

LAMBDA = 8.0


def unit_roundoff(dtype) -> float:
    """``u``: half the machine epsilon of ``dtype`` (the largest relative rounding error)."""
    return float(np.finfo(dtype).eps) / 2


def gamma(n, dtype) -> np.ndarray:
    """Probabilistic relative error bound of an ``n``-term sum in ``dtype`` (see the module)."""
    u = unit_roundoff(dtype)
    n = np.asarray(n, np.float64)
    return np.expm1(LAMBDA * np.sqrt(n) * u + n * u * u / (1 - u))


def _row_terms(x: np.ndarray, dtype):
    """Each row centred over all its columns and scaled to max |.| = 1, and its rounding.

    Returns ``(a, delta)``, both ``(n, d)``: the exact ``a`` the kernels
    mean to compute (``poz_jax.core.kernels.centered``) and a bound on the
    elementwise error of the computed one: rounding ``x`` to ``dtype``, the
    two scalings and the subtraction.
    """
    u = unit_roundoff(dtype)
    x = np.asarray(x, np.float64)
    c = x - x.mean(-1, keepdims=True)
    s = np.max(np.abs(c), -1, keepdims=True)
    s = np.where(s > 0, s, 1.0)
    a = c / s
    # The mean's own rounding shifts a whole row by one number, which the
    # centred moments cancel exactly (r is shift-invariant): it is left out.
    delta = 2 * u * np.abs(x) / s + 2 * u * np.abs(a)
    return a, delta


def rsm_bound(
    x: np.ndarray, dtype, counts=None, order=None, n_terms=None, exact=None
) -> np.ndarray:
    """Bound on ``|computed r**2 - exact r**2|`` per RSM entry: ``(L, n, n)`` (or ``(n, n)``).

    ``x``: ``(n, d)`` in float64 (the exact input). With ``counts`` and
    ``order``, the RSMs of ``x[:, order[:k]]`` for each ``k`` (the sweep);
    without, the full RSM. ``n_terms``: terms per moment sum (default ``d``;
    a sweep's running sum over blocks adds one per block, ``2 d`` bounds it).
    ``exact``: the exact RSMs (same shape as the result), if at hand; their
    ``|r|`` then replaces the bound ``|r| <= 1``, which is much tighter for
    weakly correlated items.

    Per entry: the moments ``C_ij = G_ij - s_i s_j / k`` (``G``, ``s`` sums of
    ``k`` terms) err by at most ``4 gamma |a_i| |a_j| + |delta_i| |a_j| +
    |a_i| |delta_j|`` (Cauchy-Schwarz over the kept columns); divided by the
    centred spreads ``sigma_i sigma_j`` this is ``e_ij``. Then ``r`` errs by
    at most ``e_ij / sqrt((1 - e_ii)(1 - e_jj)) + |r| f + 3u`` with
    ``f = e_ii + e_jj + e_ii e_jj`` (valid for ``f <= 1/2``; ``inf`` beyond),
    and ``r**2`` by ``(2 |r| + dr) dr + 2u``. NaN where a row is
    constant over the kept columns (the entry is undefined); 0 on the diagonal.
    """
    x = np.asarray(x, np.float64)
    d = x.shape[-1]
    single = counts is None
    counts = np.array([d]) if single else np.asarray(counts)
    order = np.arange(d) if order is None else np.asarray(order)
    u = unit_roundoff(dtype)
    g = gamma(2 * d if n_terms is None else n_terms, dtype)
    a, delta = _row_terms(x, dtype)
    a, delta, xo = a[:, order], delta[:, order], x[:, order]
    s1, s2, dd = (np.cumsum(v, -1) for v in (a, a * a, delta * delta))
    out = np.empty((len(counts), x.shape[0], x.shape[0]))
    if exact is None:
        r_abs = np.ones_like(out)
    else:
        r_abs = np.sqrt(np.nan_to_num(np.reshape(exact, out.shape), nan=1.0))
    for li, k in enumerate(counts):
        j = int(k) - 1
        var = np.maximum(s2[:, j] - s1[:, j] ** 2 / k, 0.0)
        constant = np.all(xo[:, :k] == xo[:, :1], -1) | ~(var > 0)
        sigma = np.sqrt(np.where(constant, 1.0, var))
        alpha, dlt = np.sqrt(s2[:, j]) / sigma, np.sqrt(dd[:, j]) / sigma
        e = 4 * g * np.outer(alpha, alpha) + np.outer(dlt, alpha) + np.outer(alpha, dlt)
        ed = np.diag(e)
        f = ed[:, None] + ed[None, :] + np.outer(ed, ed)
        with np.errstate(invalid="ignore", divide="ignore"):
            dr = e / np.sqrt(np.outer(1 - ed, 1 - ed)) + r_abs[li] * f + 3 * u
        dr = np.where(f <= 0.5, dr, np.inf)
        b = np.minimum((2 * r_abs[li] + dr) * dr + 2 * u, 1.0)
        b[constant, :] = np.nan
        b[:, constant] = np.nan
        np.fill_diagonal(b, 0.0)
        out[li] = b
    return out[0] if single else out


def fit_bound(a: np.ndarray, b: np.ndarray, dtype, err_a=0.0, err_b=0.0, fit_value=None):
    """Bound on ``|computed fit(a, b) - exact fit(a, b)|`` for ``(n, n)`` matrices.

    ``a``, ``b``: exact matrices (float64); ``err_a``, ``err_b``: bounds on
    the entries' errors of the matrices the kernel is given (scalars or
    ``(n, n)``); rounding them to ``dtype`` is added here. ``fit_value``:
    the exact fit if known (else ``|r| <= 1`` is used).

    Perturbing a vector ``t`` by ``e`` turns its centred direction by at most
    ``asin(|e| / |t - mean t|)``, and ``r`` is the cosine of the angle between
    the centred triangles (1-Lipschitz in it): ``dr <= asin(rho_a) + asin(rho_b)``
    plus the kernel's own rounding, ``3 gamma(T) + 4u`` for its three dot
    products of ``T`` terms and two scalings. ``inf`` when ``rho >= 1``.
    """
    iu = np.triu_indices(a.shape[0], 1)
    u = unit_roundoff(dtype)
    rho = 0.0
    for m, err in ((a, err_a), (b, err_b)):
        t = np.asarray(m, np.float64)[iu]
        e = np.broadcast_to(np.asarray(err, np.float64), np.shape(m))[iu] + u * np.abs(t)
        spread = np.linalg.norm(t - t.mean())
        r = np.linalg.norm(e) / spread if spread > 0 else np.inf
        if not r < 1:
            return np.inf
        rho += math.asin(r)
    dr = rho + 3 * float(gamma(len(iu[0]), dtype)) + 4 * u
    r = 1.0 if fit_value is None or np.isnan(fit_value) else math.sqrt(fit_value)
    return min((2 * r + dr) * dr + 2 * u, 1.0)


def sweep_bound(x, target, counts, order, dtype, rsms=None, fits=None) -> np.ndarray:
    """Bound on ``|computed sweep - exact sweep|`` per level: ``(L,)``.

    ``x``: ``(n, d)``, ``target``: ``(n, n)``, both exact (float64).
    ``rsms`` ``(L, n, n)`` and ``fits`` ``(L,)``: the exact pruned RSMs and
    fits when already at hand (computed otherwise in float64 by NumPy, not by
    the code the bound is for, and without compiling anything per shape).
    """
    if rsms is None:
        from conftest import ref_rsm_fast

        xo = np.asarray(x, np.float64)[:, np.asarray(order)]
        rsms = np.stack([ref_rsm_fast(xo[:, : int(k)]) for k in np.asarray(counts)])
    if fits is None:
        fits = [None] * len(counts)
    err = rsm_bound(x, dtype, counts, order, exact=rsms)
    out = np.empty(len(counts))
    for i in range(len(counts)):
        if np.isnan(rsms[i]).any():
            out[i] = np.nan  # the fit is undefined at this level
            continue
        out[i] = fit_bound(rsms[i], target, dtype, err[i], 0.0, fits[i])
    return out


def assert_within(got, want, bound, what: str = "") -> None:
    """``got`` and ``want`` NaN in the same places and within ``bound`` elsewhere.

    Fails naming the worst entry and its ratio to the bound.
    """
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    bound = np.broadcast_to(np.asarray(bound, np.float64), want.shape)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"NaNs differ {what}")
    ok = ~np.isnan(want)
    diff = np.abs(got - want)[ok]
    b = np.where(np.isnan(bound[ok]), 0.0, bound[ok])
    if diff.size and np.any(diff > b):
        worst = int(np.argmax(diff - b))
        raise AssertionError(
            f"{what}: |difference| {diff[worst]:.3g} exceeds its rounding bound {b[worst]:.3g} "
            f"({int(np.sum(diff > b))} of {diff.size} entries)"
        )
