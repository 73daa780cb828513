"""ROC AUC with DeLong variances, confidence intervals and paired tests.

The benchmark judges a synthetic cohort by the ROC AUC that a classifier
trained on it reaches on a held-out *real* test fold, per class and averaged
over classes, and compares two classifiers (real-trained vs synthetic-trained)
scored on the *same* test images. Both AUCs are computed on the same images,
so they are correlated; an unpaired comparison would be far too conservative.
This module provides:

* ``roc_auc``: Mann–Whitney AUC, ties count 1/2.
* ``delong_variance`` / ``delong_covariance``: DeLong, DeLong & Clarke-Pearson
  (1988), "Comparing the areas under two or more correlated ROC curves",
  Biometrics 44:837, with the midrank algorithm of Sun & Xu (2014), "Fast
  implementation of DeLong's algorithm ...", IEEE SPL 21:1389 (O(N log N)).
* ``auc_confidence_interval``: normal interval on the logit scale.
* ``delong_paired_test``: DeLong's test of two correlated AUCs.
* ``per_class_auc`` / ``paired_report``: multi-label reports (JSON-ready) and
  a paired test of the MEAN AUC over classes, whose classes have different
  positive/negative partitions of the same images (see ``influence_components``).

numpy + the standard library only (normal quantiles from
``statistics.NormalDist``, tail areas from ``math.erfc``): no scipy dependency.

Notation (DeLong 1988, Sun & Xu 2014). For one class with m positives X_i and
n negatives Y_j and the kernel psi(x, y) = 1 if x > y, 1/2 if x == y, else 0:

    AUC    = 1/(mn) sum_i sum_j psi(X_i, Y_j)
    V10(i) = 1/n sum_j psi(X_i, Y_j)          (structural component, positive i)
    V01(j) = 1/m sum_i psi(X_i, Y_j)          (structural component, negative j)
    S10    = 1/(m-1) sum_i (V10(i) - AUC)^2,   S01 = 1/(n-1) sum_j (V01(j) - AUC)^2
    Var(AUC) = S10/m + S01/n

With midranks (Sun & Xu, eq. 10-11): T_z the midranks of all m+n scores,
T_x within positives, T_y within negatives:
    V10(i) = (T_z(i) - T_x(i)) / n,   V01(j) = 1 - (T_z(m+j) - T_y(j)) / m.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

import numpy as np

__all__ = [
    "roc_auc",
    "roc_curve",
    "delong_variance",
    "delong_covariance",
    "auc_confidence_interval",
    "delong_paired_test",
    "influence_components",
    "per_class_auc",
    "paired_report",
]


# ----------------------------------------------------------------------------
# Input checks and midranks
# ----------------------------------------------------------------------------

def _as_binary_labels(labels, name: str = "labels") -> np.ndarray:
    """Labels as a bool array; accepts {0, 1} ints/floats or bools."""
    y = np.asarray(labels)
    if y.dtype == bool:
        return y
    if y.size and not np.all((y == 0) | (y == 1)):
        bad = np.unique(y[~((y == 0) | (y == 1))])[:5]
        raise ValueError(f"{name} must be 0/1 (got values {bad.tolist()}); "
                         "map uncertain/missing labels before evaluation or mask them.")
    return y.astype(bool)


def _as_scores(scores, name: str = "scores") -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if not np.all(np.isfinite(s)):
        raise ValueError(f"{name} contain NaN or inf; AUC needs finite scores.")
    return s


def _check_1d(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    y = _as_binary_labels(labels)
    s = _as_scores(scores)
    if y.ndim != 1 or s.ndim != 1 or y.shape != s.shape:
        raise ValueError(f"labels and scores must both be [N]; got {y.shape} and {s.shape}.")
    return y, s


def _midranks(x: np.ndarray) -> np.ndarray:
    """Midranks (1-based, ties get the mean of their ranks) along the last axis.

    Sun & Xu (2014), Algorithm "compute midrank". x: [..., N] -> [..., N] float64.
    """
    x = np.asarray(x, dtype=np.float64)
    flat = x.reshape(-1, x.shape[-1])
    out = np.empty_like(flat)
    n = flat.shape[-1]
    for r, row in enumerate(flat):
        order = np.argsort(row, kind="mergesort")
        sorted_row = row[order]
        # Start index of each run of equal values.
        starts = np.flatnonzero(np.r_[True, sorted_row[1:] != sorted_row[:-1]])
        ends = np.r_[starts[1:], n]                      # exclusive
        mid = 0.5 * (starts + ends - 1) + 1.0            # mean 1-based rank of the run
        ranks_sorted = np.repeat(mid, ends - starts)
        out[r, order] = ranks_sorted
    return out.reshape(x.shape)


def _structural_components(positives: np.ndarray, negatives: np.ndarray):
    """DeLong structural components for M score vectors sharing one partition.

    positives: [M, m], negatives: [M, n] -> (aucs [M], V10 [M, m], V01 [M, n]).
    """
    m, n = positives.shape[1], negatives.shape[1]
    tx = _midranks(positives)
    ty = _midranks(negatives)
    tz = _midranks(np.concatenate([positives, negatives], axis=1))
    v10 = (tz[:, :m] - tx) / n
    v01 = 1.0 - (tz[:, m:] - ty) / m
    aucs = v10.mean(axis=1)
    return aucs, v10, v01


# ----------------------------------------------------------------------------
# Single-partition AUC, DeLong variance / covariance
# ----------------------------------------------------------------------------

def roc_auc(labels, scores) -> float:
    """ROC AUC = P(score_pos > score_neg) + 1/2 P(tie) (Mann–Whitney U / (mn)).

    labels: [N] in {0, 1}; scores: [N] finite. Returns NaN when the labels lack
    a positive or a negative (the AUC is undefined, not 0.5).
    """
    y, s = _check_1d(labels, scores)
    m, n = int(y.sum()), int((~y).sum())
    if m == 0 or n == 0:
        return float("nan")
    ranks = _midranks(s)
    # Mann–Whitney: U = sum of positive midranks - m(m+1)/2.
    return float((ranks[y].sum() - m * (m + 1) / 2.0) / (m * n))


def roc_curve(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rates [T+1], true positive rates [T+1]) at every distinct score threshold.

    Starts at (0, 0) and ends at (1, 1); tied scores move along a diagonal, so
    the trapezoidal area under the curve equals ``roc_auc`` exactly. Needs at
    least one positive and one negative.
    """
    y, s = _check_1d(labels, scores)
    m, n = int(y.sum()), int((~y).sum())
    if m == 0 or n == 0:
        raise ValueError(f"an ROC curve needs positives and negatives; got {m} and {n}")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last_of_tie = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tps, fps = np.cumsum(y)[last_of_tie], np.cumsum(~y)[last_of_tie]
    return np.r_[0.0, fps / n], np.r_[0.0, tps / m]


def delong_covariance(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    """AUCs and their DeLong covariance for M score vectors on the same images.

    labels: [N] in {0, 1}; scores: [M, N] (M classifiers scoring the same N
    images for the same class). Returns (aucs [M], cov [M, M]) with
        cov[a, b] = S10[a, b]/m + S01[a, b]/n,
        S10[a, b] = 1/(m-1) sum_i (V10_a(i) - AUC_a)(V10_b(i) - AUC_b)   (same for S01)
    (DeLong 1988, eq. 3-4). Needs >= 2 positives and >= 2 negatives for the
    sample covariances (with 1 of either, the corresponding term is undefined).
    """
    y = _as_binary_labels(labels)
    s = _as_scores(scores)
    if s.ndim == 1:
        s = s[None]
    if y.ndim != 1 or s.ndim != 2 or s.shape[1] != y.shape[0]:
        raise ValueError(f"labels must be [N] and scores [M, N]; got {y.shape} and {s.shape}.")
    m, n = int(y.sum()), int((~y).sum())
    if m < 2 or n < 2:
        raise ValueError(f"DeLong covariance needs >= 2 positives and >= 2 negatives; "
                         f"got {m} positives and {n} negatives.")
    aucs, v10, v01 = _structural_components(s[:, y], s[:, ~y])
    s10 = np.atleast_2d(np.cov(v10, ddof=1))
    s01 = np.atleast_2d(np.cov(v01, ddof=1))
    cov = s10 / m + s01 / n
    return aucs, cov


def delong_variance(labels, scores) -> tuple[float, float]:
    """(AUC, DeLong variance S10/m + S01/n) for one score vector. labels, scores: [N]."""
    _check_1d(labels, scores)
    aucs, cov = delong_covariance(labels, np.asarray(scores)[None])
    return float(aucs[0]), float(cov[0, 0])


# ----------------------------------------------------------------------------
# Intervals and tests
# ----------------------------------------------------------------------------

def _z(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1); got {level}.")
    return statistics.NormalDist().inv_cdf(0.5 + level / 2.0)


def _two_sided_p(z: float) -> float:
    return float(math.erfc(abs(z) / math.sqrt(2.0)))


def _logit_interval(auc: float, variance: float, z: float, n_eff: int) -> tuple[float, float]:
    """Normal interval on logit(AUC) with delta-method SE = se / (AUC (1 - AUC)).

    Fallback when AUC is exactly 0 or 1 (logit infinite; DeLong variance is 0
    there too): a Wilson score interval for a proportion at the observed AUC
    with the effective sample size n_eff = min(#pos, #neg). Rationale: Bamber
    (1975) / Birnbaum & Klose (1957) bound Var(AUC) <= AUC(1-AUC)/min(m, n),
    i.e. AUC is no noisier than a proportion over min(m, n) trials; Wilson at
    p = 1 gives [n/(n+z^2), 1] (the "rule of three" family), never [1, 1].
    """
    if auc <= 0.0 or auc >= 1.0:
        k = float(n_eff)
        bound = k / (k + z * z)
        return (bound, 1.0) if auc >= 1.0 else (0.0, 1.0 - bound)
    se_logit = math.sqrt(max(variance, 0.0)) / (auc * (1.0 - auc))
    logit = math.log(auc / (1.0 - auc))
    lo, hi = logit - z * se_logit, logit + z * se_logit
    expit = lambda t: 1.0 / (1.0 + math.exp(-t))  # noqa: E731
    return expit(lo), expit(hi)


def auc_confidence_interval(labels, scores, level: float = 0.95) -> tuple[float, float, float]:
    """(auc, low, high): DeLong standard error, normal approximation on the logit scale.

    Why logit: AUC lives in [0, 1] and its sampling distribution is skewed near
    1 (where medical classifiers often are); the plain Wald interval
    AUC +- z se then exceeds 1. On logit(AUC) the normal approximation is
    better and back-transformed bounds stay inside (0, 1) (Pepe 2003, sec. 5.2;
    the "logit" option of pROC/Qin & Hotilovac 2008). SE on the logit scale by
    the delta method: se / (AUC (1 - AUC)). AUC exactly 0 or 1: see
    ``_logit_interval`` (Wilson interval with n_eff = min(#pos, #neg)).
    A zero DeLong variance with 0 < AUC < 1 (e.g. all scores tied) gives the
    degenerate interval [AUC, AUC].
    """
    y, _ = _check_1d(labels, scores)
    auc, var = delong_variance(labels, scores)
    lo, hi = _logit_interval(auc, var, _z(level), min(int(y.sum()), int((~y).sum())))
    return auc, lo, hi


def _paired_from_moments(auc_a, auc_b, var_diff, level) -> dict:
    diff = float(auc_a - auc_b)
    var_diff = max(float(var_diff), 0.0)
    se = math.sqrt(var_diff)
    zq = _z(level)
    if se > 0.0:
        z = diff / se
        p = _two_sided_p(z)
    elif diff == 0.0:
        z, p = 0.0, 1.0
    else:  # a difference with zero variance: every resample shows it. z = inf is
        z, p = None, 0.0  # not valid JSON, so z is None.
    return {
        "auc_a": float(auc_a),
        "auc_b": float(auc_b),
        "difference": diff,
        "ci_low": diff - zq * se,
        "ci_high": diff + zq * se,
        "variance": var_diff,
        "z": None if z is None else float(z),
        "p_value": float(p),
    }


def delong_paired_test(labels, scores_a, scores_b, level: float = 0.95) -> dict:
    """DeLong's test for two correlated ROC curves on the same images (two-sided).

    labels, scores_a, scores_b: [N]. Var(A_a - A_b) = var_a + var_b - 2 cov_ab
    (DeLong 1988, eq. 5 with contrast L = [1, -1]); z = diff / sqrt(Var),
    p = erfc(|z| / sqrt 2). CI is the Wald interval of the difference (a
    difference can be negative, so no logit). Returns a dict of plain floats:
    auc_a, auc_b, difference (= auc_a - auc_b), ci_low, ci_high, variance, z,
    p_value. Zero variance: p = 1, z = 0 if the difference is 0, else p = 0, z None.
    """
    y, sa = _check_1d(labels, scores_a)
    _, sb = _check_1d(labels, scores_b)
    aucs, cov = delong_covariance(y, np.stack([sa, sb]))
    var_diff = cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1]
    return _paired_from_moments(aucs[0], aucs[1], var_diff, level)


# ----------------------------------------------------------------------------
# Multi-label: per-image influence components across classes
# ----------------------------------------------------------------------------

def influence_components(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    """Per-image DeLong influence of each image on each class's AUC.

    labels: [N, K] in {0, 1}; scores: [N, K]. Returns (aucs [K], xi [N, K]).
    A class without a positive or a negative has AUC NaN; a class with fewer
    than 2 positives or 2 negatives has its AUC but a NaN column of xi
    (DeLong's S10/S01 need m - 1, n - 1 > 0).

    Derivation. Images are i.i.d.; class k splits them into its own m_k
    positives and n_k negatives, and every image is a positive or a negative
    of every class. The Hajek projection of the U-statistic AUC_k onto single
    images (DeLong 1988; Hanley & Hajian-Tilaki 1997) is
        AUC_k - theta_k ~= sum_i phi_k(i),
        phi_k(i) = (V10_k(i) - AUC_k) / m_k   if image i is a positive of k,
                 = (V01_k(i) - AUC_k) / n_k   if image i is a negative of k,
    (the same as the influence function of the AUC functional under i.i.d.
    sampling of (label, score) pairs, divided by N). Any linear combination
    L = sum_k w_k AUC_k is then ~ sum_i sum_k w_k phi_k(i), a sum of
    independent per-image terms, so
        Var(L) ~= sum_i ( sum_k w_k xi_k(i) )^2 = w^T C w,   C = xi^T xi,
    with the small-sample-corrected components
        xi_k(i) = (V10_k(i) - AUC_k) / sqrt(m_k (m_k - 1))   (positive of k)
                = (V01_k(i) - AUC_k) / sqrt(n_k (n_k - 1))   (negative of k).
    Each xi_k sums to 0 over the positives and over the negatives of k, so no
    further centering is needed. The sqrt corrections make C reduce EXACTLY to
    DeLong: C_kk = S10_k/m_k + S01_k/n_k (K = 1 is plain DeLong), and when two
    columns share one partition (two classifiers on one class) C_kl is DeLong's
    covariance S10_kl/m + S01_kl/n. For different partitions, C_kl picks up the
    images' joint influence on both classes (e.g. a positive of k that is a
    negative of l), which is what makes the mean-AUC variance correct.
    """
    y = _as_binary_labels(labels)
    s = _as_scores(scores)
    if y.ndim != 2 or s.shape != y.shape:
        raise ValueError(f"labels and scores must both be [N, K]; got {y.shape} and {s.shape}.")
    n_img, k_cls = y.shape
    xi = np.full((n_img, k_cls), np.nan)
    aucs = np.full(k_cls, np.nan)
    for k in range(k_cls):
        pos = y[:, k]
        m, n = int(pos.sum()), int((~pos).sum())
        if m == 0 or n == 0:
            continue
        a, v10, v01 = _structural_components(s[pos, k][None], s[~pos, k][None])
        aucs[k] = a[0]
        if m < 2 or n < 2:
            continue
        col = np.empty(n_img)
        col[pos] = (v10[0] - a[0]) / math.sqrt(m * (m - 1))
        col[~pos] = (v01[0] - a[0]) / math.sqrt(n * (n - 1))
        xi[:, k] = col
    return aucs, xi


def seed_mean_variances(labels, scores_a: Sequence, scores_b: Sequence | None = None) -> tuple[list, float | None]:
    """DeLong's test-set variance of a statistic averaged over judge seeds: per class and for the mean AUC.

    labels: [N, K]; scores_a: one [N, K] array per seed (and scores_b, of
    the same length, for the difference a - b of paired judges, seed s of a
    with seed s of b). The statistic is mean_s AUC^a_s (or mean_s (AUC^a_s -
    AUC^b_s)); its per-image influence is the seeds' mean of each seed's
    `influence_components`, so Var = sum_i (mean_s xi_s(i))^2. Judges err
    partly on the same images and partly on different ones, so this is at
    most, and usually well below, the mean of the seeds' own DeLong
    variances. Returns ([per class K: variance or None], mean-AUC variance or
    None); None where a class lacks 2 positives and 2 negatives (as
    `per_class_auc`'s "variance_defined").
    """
    y = _as_binary_labels(labels)
    pairs = list(zip(scores_a, scores_b, strict=True)) if scores_b is not None else [(a, None) for a in scores_a]
    psi = 0.0
    for a, b in pairs:
        xi = influence_components(y, a)[1]
        psi = psi + (xi if b is None else xi - influence_components(y, b)[1]) / len(pairs)
    defined, var_ok = _defined(y)
    per_class = [float(psi[:, k] @ psi[:, k]) if var_ok[k] else None for k in range(y.shape[1])]
    mean = None
    if defined.any() and np.all(var_ok[defined]):
        column = psi[:, defined].mean(axis=1)
        mean = float(column @ column)
    return per_class, mean


def _prepare_multilabel(labels, scores, class_names, mask, name="scores"):
    y = _as_binary_labels(labels)
    s = _as_scores(scores, name)
    if y.ndim != 2 or s.shape != y.shape:
        raise ValueError(f"labels and {name} must both be [N, K]; got {y.shape} and {s.shape}.")
    names = list(class_names)
    if len(names) != y.shape[1]:
        raise ValueError(f"class_names has {len(names)} names for K = {y.shape[1]} label columns.")
    if len(set(names)) != len(names):
        raise ValueError(f"class_names must be unique; got {names}.")
    if mask is not None:
        mk = np.asarray(mask)
        if mk.dtype != bool or mk.shape != (y.shape[0],):
            raise ValueError(f"mask must be bool [N] = [{y.shape[0]}]; got {mk.dtype} {mk.shape}.")
        y, s = y[mk], s[mk]
    return y, s, names


def _defined(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """([K] AUC defined: >= 1 positive and >= 1 negative,
        [K] variance defined: >= 2 positives and >= 2 negatives, DeLong needs m-1, n-1 > 0)."""
    m = y.sum(axis=0)
    n = y.shape[0] - m
    return (m >= 1) & (n >= 1), (m >= 2) & (n >= 2)


def per_class_auc(labels, scores, class_names: Sequence[str], mask=None,
                  level: float = 0.95) -> dict:
    """Per-class AUC with DeLong CIs and the mean AUC over defined classes (JSON-ready).

    labels: [N, K] in {0, 1}; scores: [N, K]; class_names: K unique names;
    mask: optional [N] bool, False rows (eval padding) are dropped first.

    A class is *defined* when the (masked) test fold holds >= 1 positive and
    >= 1 negative. Undefined classes report auc/ci/variance None (not 0.5, not
    NaN: NaN is not valid JSON) and are excluded from "mean_auc". A defined
    class with a single positive or negative has an AUC but no DeLong variance
    (S10/S01 need m - 1, n - 1 > 0): "variance_defined" False, variance and CI
    None; the mean AUC still includes it, but then the mean's variance/CI are
    None (an honest "not estimable" rather than a variance that silently
    ignores one class's noise).

    Mean AUC variance: w^T C w with C = xi^T xi from ``influence_components``
    (w = 1/K_def on defined classes), i.e. sum_i psi(i)^2 with
    psi(i) = mean_k xi_k(i); its CI uses the same logit interval as the classes.

    Returns {"classes": {name: {"auc", "ci_low", "ci_high", "variance",
    "positives", "negatives", "defined", "variance_defined"}}, "mean_auc",
    "mean_auc_ci_low", "mean_auc_ci_high", "mean_auc_variance",
    "defined_classes", "num_classes", "num_images", "level"}; numbers are
    Python floats/ints, missing values None.
    """
    y, s, names = _prepare_multilabel(labels, scores, class_names, mask)
    zq = _z(level)
    defined, var_ok = _defined(y)
    aucs, xi = influence_components(y, s)
    classes = {}
    for k, name in enumerate(names):
        m, n = int(y[:, k].sum()), int(y.shape[0] - y[:, k].sum())
        entry = {"auc": None, "ci_low": None, "ci_high": None, "variance": None,
                 "positives": m, "negatives": n, "defined": bool(defined[k]),
                 "variance_defined": bool(var_ok[k])}
        if defined[k]:
            entry["auc"] = float(aucs[k])
        if var_ok[k]:
            var = float(xi[:, k] @ xi[:, k])
            lo, hi = _logit_interval(float(aucs[k]), var, zq, min(m, n))
            entry.update(ci_low=float(lo), ci_high=float(hi), variance=var)
        classes[name] = entry
    out = {"classes": classes, "mean_auc": None, "mean_auc_ci_low": None,
           "mean_auc_ci_high": None, "mean_auc_variance": None,
           "defined_classes": int(defined.sum()), "num_classes": len(names),
           "num_images": int(y.shape[0]), "level": float(level)}
    if defined.any():
        out["mean_auc"] = float(aucs[defined].mean())
        if np.all(var_ok[defined]):
            psi = xi[:, defined].mean(axis=1)           # [N] per-image influence on the mean
            var = float(psi @ psi)
            pos = y[:, defined].sum(0)
            n_eff = int(np.minimum(pos, y.shape[0] - pos).min())
            lo, hi = _logit_interval(out["mean_auc"], var, zq, n_eff)
            out.update(mean_auc_ci_low=float(lo), mean_auc_ci_high=float(hi),
                       mean_auc_variance=var)
    return out


_TEST_KEYS = ("auc_a", "auc_b", "difference", "ci_low", "ci_high", "variance", "z", "p_value")


def paired_report(labels, scores_a, scores_b, class_names: Sequence[str], mask=None,
                  level: float = 0.95) -> dict:
    """Per-class DeLong paired tests of a vs b and a paired test of the MEAN AUC.

    labels: [N, K]; scores_a, scores_b: [N, K] (e.g. real-trained and
    synthetic-trained classifiers on the same real test images); mask: [N] bool.

    Mean-AUC test: D = mean_k AUC^a_k - mean_k AUC^b_k over the K_def defined
    classes. With xi^a, xi^b from ``influence_components`` (each image's
    small-sample-corrected DeLong influence on each class's AUC),
        psi(i)  = 1/K_def sum_{k defined} (xi^a_k(i) - xi^b_k(i)),
        Var(D)  = sum_i psi(i)^2
                = 1/K_def^2 sum_{k,l} [C^aa_kl + C^bb_kl - C^ab_kl - C^ba_kl],
    C^uv = (xi^u)^T xi^v. This covers both the a/b correlation (same images,
    same class) and the cross-class correlation (same images, different
    partitions). With K = 1 it is exactly ``delong_paired_test``.
    z = D / sqrt(Var(D)), two-sided normal p, Wald CI of D.

    Definedness as in ``per_class_auc`` (labels only, so the same for a and b).
    Per-class tests need "variance_defined"; otherwise the test fields are None
    (auc_a/auc_b/difference still given when the class is defined). The mean
    test's statistics are None when any defined class lacks a variance; "mean"
    is None when no class is defined. Zero variance with a nonzero difference
    gives p_value 0 and z None (infinite z is not valid JSON).

    Returns {"classes": {name: {auc_a, auc_b, difference, ci_low, ci_high,
    variance, z, p_value, positives, negatives, defined, variance_defined}},
    "mean": {the same test keys} | None, "defined_classes", "num_classes",
    "num_images", "level"}.
    """
    y, sa, names = _prepare_multilabel(labels, scores_a, class_names, mask, "scores_a")
    _, sb, _ = _prepare_multilabel(labels, scores_b, class_names, mask, "scores_b")
    _z(level)
    defined, var_ok = _defined(y)
    aucs_a, xi_a = influence_components(y, sa)
    aucs_b, xi_b = influence_components(y, sb)

    def point_only(a, b):
        entry = dict.fromkeys(_TEST_KEYS)
        entry.update(auc_a=float(a), auc_b=float(b), difference=float(a - b))
        return entry

    classes = {}
    for k, name in enumerate(names):
        m, n = int(y[:, k].sum()), int(y.shape[0] - y[:, k].sum())
        if var_ok[k]:
            d = xi_a[:, k] - xi_b[:, k]
            entry = _paired_from_moments(aucs_a[k], aucs_b[k], float(d @ d), level)
        elif defined[k]:
            entry = point_only(aucs_a[k], aucs_b[k])
        else:
            entry = dict.fromkeys(_TEST_KEYS)
        entry.update(positives=m, negatives=n, defined=bool(defined[k]),
                     variance_defined=bool(var_ok[k]))
        classes[name] = entry
    mean = None
    if defined.any():
        ma, mb = aucs_a[defined].mean(), aucs_b[defined].mean()
        if np.all(var_ok[defined]):
            psi = (xi_a[:, defined] - xi_b[:, defined]).mean(axis=1)   # [N]
            mean = _paired_from_moments(ma, mb, float(psi @ psi), level)
        else:
            mean = point_only(ma, mb)
    return {"classes": classes, "mean": mean, "defined_classes": int(defined.sum()),
            "num_classes": len(names), "num_images": int(y.shape[0]), "level": float(level)}
