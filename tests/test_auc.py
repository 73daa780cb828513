"""Tests for medgan.eval.auc: AUC, DeLong variance/covariance, CIs, paired tests, reports."""

import json
import math
import statistics

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from medgan.eval import auc as A

Z95 = statistics.NormalDist().inv_cdf(0.975)


# ----------------------------------------------------------------------------
# Brute-force references (O(m n), straight from the definitions in DeLong 1988)
# ----------------------------------------------------------------------------

def _psi(x, y):
    return (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])


def _brute_delong_cov(labels, scores):
    """scores [M, N] -> (aucs [M], cov [M, M]) from the pairwise kernel, no ranks."""
    y = np.asarray(labels).astype(bool)
    v10, v01 = [], []
    for s in np.atleast_2d(scores):
        p = _psi(s[y], s[~y])                   # [m, n]
        v10.append(p.mean(axis=1))
        v01.append(p.mean(axis=0))
    v10, v01 = np.array(v10), np.array(v01)
    m, n = v10.shape[1], v01.shape[1]
    aucs = v10.mean(axis=1)
    s10 = (v10 - aucs[:, None]) @ (v10 - aucs[:, None]).T / (m - 1)
    s01 = (v01 - aucs[:, None]) @ (v01 - aucs[:, None]).T / (n - 1)
    return aucs, s10 / m + s01 / n


# ----------------------------------------------------------------------------
# roc_auc
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = 60 + 20 * seed
    labels = rng.integers(0, 2, n)
    scores = np.round(rng.normal(size=n) + 0.7 * labels, 1)   # rounding -> many ties
    assert len(np.unique(scores)) < n
    assert A.roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_roc_auc_exact_small_cases():
    assert A.roc_auc([1, 0], [0.7, 0.2]) == 1.0
    assert A.roc_auc([1, 0], [0.2, 0.7]) == 0.0
    assert A.roc_auc([1, 0, 1, 0], [0.5, 0.5, 0.5, 0.5]) == 0.5     # all ties -> 1/2
    # pos {3, 1}, neg {2, 1}: pairs (3>2)=1, (3>1)=1, (1<2)=0, (1=1)=1/2 -> 2.5/4
    assert A.roc_auc([True, True, False, False], [3, 1, 2, 1]) == 0.625


def test_roc_auc_nan_without_both_classes():
    assert math.isnan(A.roc_auc([1, 1, 1], [0.1, 0.2, 0.3]))
    assert math.isnan(A.roc_auc([0, 0], [0.1, 0.2]))


def test_input_errors():
    with pytest.raises(ValueError, match="0/1"):
        A.roc_auc([0, 1, 2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="NaN"):
        A.roc_auc([0, 1], [0.1, float("nan")])
    with pytest.raises(ValueError, match=r"\[N\]"):
        A.roc_auc([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="2 positives"):
        A.delong_variance([1, 0, 0], [0.3, 0.2, 0.1])
    with pytest.raises(ValueError, match="class_names"):
        A.per_class_auc(np.zeros((4, 2)), np.zeros((4, 2)), ["only_one"])
    with pytest.raises(ValueError, match="mask"):
        A.per_class_auc(np.zeros((4, 1)), np.zeros((4, 1)), ["a"], mask=np.ones(3, bool))


# ----------------------------------------------------------------------------
# DeLong variance / covariance
# ----------------------------------------------------------------------------

def test_delong_variance_hand_computed():
    """3 positives X = (0.9, 0.6, 0.4), 2 negatives Y = (0.5, 0.4); psi(x, y) = 1, 1/2 tie, 0.

    V10(x) = mean_j psi(x, Y_j):  V10(0.9) = (1 + 1)/2 = 1,  V10(0.6) = (1 + 1)/2 = 1,
                                  V10(0.4) = (0 + 1/2)/2 = 1/4.
    AUC = mean V10 = (1 + 1 + 1/4)/3 = 3/4.
    V01(y) = mean_i psi(X_i, y):  V01(0.5) = (1 + 1 + 0)/3 = 2/3,
                                  V01(0.4) = (1 + 1 + 1/2)/3 = 5/6;  mean = 3/4 (check).
    S10 = [(1/4)^2 + (1/4)^2 + (1/2)^2] / (3 - 1) = (3/8)/2 = 3/16.
    S01 = [(2/3 - 3/4)^2 + (5/6 - 3/4)^2] / (2 - 1) = 1/144 + 1/144 = 1/72.
    Var = S10/m + S01/n = (3/16)/3 + (1/72)/2 = 1/16 + 1/144 = 10/144 = 5/72.
    """
    labels = [1, 1, 1, 0, 0]
    scores = [0.9, 0.6, 0.4, 0.5, 0.4]
    auc, var = A.delong_variance(labels, scores)
    assert auc == pytest.approx(0.75, abs=1e-15)
    assert var == pytest.approx(5 / 72, abs=1e-15)
    # Order of images does not matter.
    perm = [4, 2, 0, 3, 1]
    auc_p, var_p = A.delong_variance(np.array(labels)[perm], np.array(scores)[perm])
    assert (auc_p, var_p) == pytest.approx((0.75, 5 / 72), abs=1e-15)


@pytest.mark.parametrize("seed", range(3))
def test_fast_delong_matches_pairwise_definition(seed):
    rng = np.random.default_rng(seed)
    n = 50
    labels = rng.integers(0, 2, n)
    labels[:2], labels[2:4] = 1, 0
    scores = np.round(rng.normal(size=(3, n)) + labels * np.array([[1.0], [0.5], [0.0]]), 1)
    aucs, cov = A.delong_covariance(labels, scores)
    ref_aucs, ref_cov = _brute_delong_cov(labels, scores)
    np.testing.assert_allclose(aucs, ref_aucs, atol=1e-12)
    np.testing.assert_allclose(cov, ref_cov, atol=1e-12)


def test_covariance_symmetric_psd_diag_equals_single_variances():
    rng = np.random.default_rng(7)
    n = 80
    labels = rng.integers(0, 2, n)
    shared = rng.normal(size=n)
    scores = np.stack([labels * w + shared + rng.normal(size=n) for w in (1.5, 1.0, 0.3, 0.0)])
    aucs, cov = A.delong_covariance(labels, scores)
    assert cov.shape == (4, 4)
    np.testing.assert_allclose(cov, cov.T, atol=1e-15)
    assert np.linalg.eigvalsh(cov).min() >= -1e-12
    for i in range(4):
        auc_i, var_i = A.delong_variance(labels, scores[i])
        assert aucs[i] == pytest.approx(auc_i, abs=1e-15)
        assert cov[i, i] == pytest.approx(var_i, rel=1e-12)
    assert cov[0, 1] > 0                     # shared nuisance -> positively correlated AUCs


def test_reversed_scores_are_perfectly_anticorrelated():
    # Without ties AUC(-s) = 1 - AUC(s) and V10(-s) = 1 - V10(s): cov = -var, so the
    # paired variance is var + var + 2 var = 4 var.
    rng = np.random.default_rng(3)
    labels = np.r_[np.ones(12), np.zeros(15)]
    s = rng.normal(size=27) + labels
    auc, var = A.delong_variance(labels, s)
    test = A.delong_paired_test(labels, s, -s)
    assert test["auc_b"] == pytest.approx(1 - auc, abs=1e-14)
    assert test["variance"] == pytest.approx(4 * var, rel=1e-12)


# ----------------------------------------------------------------------------
# Confidence intervals
# ----------------------------------------------------------------------------

def test_ci_logit_formula_on_hand_case():
    auc, lo, hi = A.auc_confidence_interval([1, 1, 1, 0, 0], [0.9, 0.6, 0.4, 0.5, 0.4])
    se_logit = math.sqrt(5 / 72) / (0.75 * 0.25)
    expit = lambda t: 1 / (1 + math.exp(-t))  # noqa: E731
    assert auc == 0.75
    assert lo == pytest.approx(expit(math.log(3) - Z95 * se_logit), abs=1e-12)
    assert hi == pytest.approx(expit(math.log(3) + Z95 * se_logit), abs=1e-12)
    assert 0 < lo < auc < hi < 1         # a Wald interval would give 0.75 +- 0.52 -> [0.23, 1.27]


@pytest.mark.parametrize("seed", range(4))
def test_ci_contains_auc_and_is_within_unit_interval(seed):
    rng = np.random.default_rng(seed)
    labels = np.r_[np.ones(10), np.zeros(10)]
    scores = rng.normal(size=20) + 3.0 * labels       # AUC near 1 -> Wald would exceed 1
    auc, lo, hi = A.auc_confidence_interval(labels, scores)
    assert 0.0 <= lo <= auc <= hi <= 1.0
    _, lo99, hi99 = A.auc_confidence_interval(labels, scores, level=0.99)
    assert lo99 <= lo and hi99 >= hi


def test_ci_perfect_separation_falls_back_to_wilson():
    labels = np.r_[np.ones(4), np.zeros(9)]
    scores = np.r_[np.linspace(2, 3, 4), np.linspace(0, 1, 9)]
    auc, lo, hi = A.auc_confidence_interval(labels, scores)
    assert (auc, hi) == (1.0, 1.0)
    assert lo == pytest.approx(4 / (4 + Z95 ** 2), abs=1e-12)      # n_eff = min(4, 9)
    auc0, lo0, hi0 = A.auc_confidence_interval(labels, -scores)
    assert (auc0, lo0) == (0.0, 0.0)
    assert hi0 == pytest.approx(1 - 4 / (4 + Z95 ** 2), abs=1e-12)


def test_ci_all_tied_is_degenerate():
    assert A.auc_confidence_interval([1, 1, 0, 0], [0.3] * 4) == (0.5, 0.5, 0.5)


# ----------------------------------------------------------------------------
# Paired test
# ----------------------------------------------------------------------------

def test_paired_identical_scores():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 40)
    s = rng.normal(size=40) + labels
    t = A.delong_paired_test(labels, s, s)
    assert t["difference"] == 0.0 and t["z"] == 0.0 and t["p_value"] == 1.0
    assert t["ci_low"] == t["ci_high"] == 0.0
    assert t["auc_a"] == t["auc_b"] == pytest.approx(A.roc_auc(labels, s), abs=1e-14)


def test_paired_clearly_better_classifier_small_p():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 300)
    noise = rng.normal(size=300)
    good = 2.5 * labels + noise
    poor = 0.3 * labels + noise + rng.normal(size=300)
    t = A.delong_paired_test(labels, good, poor)
    assert t["difference"] > 0.2
    assert t["p_value"] < 1e-6
    assert t["ci_low"] > 0
    assert t["p_value"] == pytest.approx(math.erfc(abs(t["z"]) / math.sqrt(2)), rel=1e-12)
    swapped = A.delong_paired_test(labels, poor, good)
    assert swapped["z"] == pytest.approx(-t["z"], rel=1e-12)
    assert swapped["p_value"] == pytest.approx(t["p_value"], rel=1e-12)


def test_paired_similar_classifiers_large_p():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 200)
    base = labels + rng.normal(size=200)
    t = A.delong_paired_test(labels, base + 0.3 * rng.normal(size=200),
                             base + 0.3 * rng.normal(size=200))
    assert t["p_value"] > 0.05


# ----------------------------------------------------------------------------
# Multi-label reports
# ----------------------------------------------------------------------------

def _multilabel(seed, n=60, k=3):
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, k)) < 0.4).astype(np.float32)
    labels[:2], labels[2:4] = 1, 0
    scores = labels * 1.2 + rng.normal(size=(n, k))
    return labels, scores


def test_per_class_matches_single_class_delong():
    labels, scores = _multilabel(0)
    rep = A.per_class_auc(labels, scores, ["a", "b", "c"])
    for k, name in enumerate("abc"):
        c = rep["classes"][name]
        auc, lo, hi = A.auc_confidence_interval(labels[:, k], scores[:, k])
        _, var = A.delong_variance(labels[:, k], scores[:, k])
        assert c["defined"] and c["variance_defined"]
        assert (c["auc"], c["ci_low"], c["ci_high"]) == pytest.approx((auc, lo, hi), abs=1e-12)
        assert c["variance"] == pytest.approx(var, rel=1e-12)
        assert c["positives"] + c["negatives"] == 60
    assert rep["mean_auc"] == pytest.approx(np.mean([rep["classes"][c]["auc"] for c in "abc"]))
    assert rep["defined_classes"] == 3
    assert rep["mean_auc_ci_low"] < rep["mean_auc"] < rep["mean_auc_ci_high"]


def test_undefined_class_excluded_and_json_clean():
    labels, scores = _multilabel(1)
    labels[:, 1] = 0                                   # all-negative column
    rep = A.per_class_auc(labels, scores, ["a", "none", "c"])
    u = rep["classes"]["none"]
    assert u["defined"] is False and u["auc"] is None and u["variance"] is None
    assert u["ci_low"] is None and u["positives"] == 0 and u["negatives"] == 60
    assert rep["defined_classes"] == 2
    assert rep["mean_auc"] == pytest.approx(
        (A.roc_auc(labels[:, 0], scores[:, 0]) + A.roc_auc(labels[:, 2], scores[:, 2])) / 2,
        abs=1e-12)
    text = json.dumps(rep, allow_nan=False)            # raises on NaN/inf
    assert json.loads(text)["classes"]["none"]["auc"] is None
    pr = A.paired_report(labels, scores, scores * 0.5 + 1, ["a", "none", "c"])
    assert pr["classes"]["none"]["defined"] is False and pr["classes"]["none"]["p_value"] is None
    assert pr["defined_classes"] == 2
    json.dumps(pr, allow_nan=False)


def test_no_defined_class():
    labels = np.zeros((6, 2))
    rep = A.per_class_auc(labels, np.zeros((6, 2)), ["a", "b"])
    assert rep["mean_auc"] is None and rep["defined_classes"] == 0
    assert A.paired_report(labels, np.zeros((6, 2)), np.zeros((6, 2)), ["a", "b"])["mean"] is None
    json.dumps(rep, allow_nan=False)


def test_single_positive_class_has_auc_but_no_variance():
    labels, scores = _multilabel(2)
    labels[:, 2] = 0
    labels[5, 2] = 1
    rep = A.per_class_auc(labels, scores, ["a", "b", "c"])
    c = rep["classes"]["c"]
    assert c["defined"] and not c["variance_defined"]
    assert c["auc"] == pytest.approx(A.roc_auc(labels[:, 2], scores[:, 2]))
    assert c["variance"] is None and c["ci_low"] is None
    assert rep["defined_classes"] == 3 and rep["mean_auc"] is not None
    assert rep["mean_auc_variance"] is None
    pr = A.paired_report(labels, scores, scores + 0.1 * np.arange(60)[:, None], ["a", "b", "c"])
    assert pr["mean"]["p_value"] is None and pr["mean"]["difference"] is not None
    json.dumps(pr, allow_nan=False)


def test_mask_excludes_padded_rows():
    labels, scores = _multilabel(3, n=50)
    pad_labels = np.ones((14, 3), np.float32)          # padding rows: garbage that would matter
    pad_scores = np.full((14, 3), -5.0)
    mask = np.r_[np.ones(50, bool), np.zeros(14, bool)]
    full_l, full_s = np.r_[labels, pad_labels], np.r_[scores, pad_scores]
    masked = A.per_class_auc(full_l, full_s, ["a", "b", "c"], mask=mask)
    assert masked == A.per_class_auc(labels, scores, ["a", "b", "c"])
    assert masked["num_images"] == 50
    assert A.per_class_auc(full_l, full_s, ["a", "b", "c"])["mean_auc"] < masked["mean_auc"]
    pr_m = A.paired_report(full_l, full_s, full_s ** 2, ["a", "b", "c"], mask=mask)
    assert pr_m == A.paired_report(labels, scores, scores ** 2, ["a", "b", "c"])


def test_mean_test_reduces_to_delong_for_one_class():
    labels, scores = _multilabel(4, k=1)
    rng = np.random.default_rng(4)
    other = scores + rng.normal(size=scores.shape)
    pr = A.paired_report(labels, scores, other, ["x"])
    ref = A.delong_paired_test(labels[:, 0], scores[:, 0], other[:, 0])
    for key in ("auc_a", "auc_b", "difference", "variance", "z", "p_value", "ci_low", "ci_high"):
        assert pr["mean"][key] == pytest.approx(ref[key], rel=1e-12, abs=1e-15), key
        assert pr["classes"]["x"][key] == pytest.approx(ref[key], rel=1e-12, abs=1e-15), key


def test_influence_covariance_equals_delong_for_shared_partition():
    # Two "classes" with the same label column: C = xi^T xi must be DeLong's covariance.
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 45)
    s = np.stack([y + rng.normal(size=45), 0.5 * y + rng.normal(size=45)], axis=1)
    aucs, xi = A.influence_components(np.stack([y, y], axis=1), s)
    ref_aucs, ref_cov = A.delong_covariance(y, s.T)
    np.testing.assert_allclose(aucs, ref_aucs, atol=1e-14)
    np.testing.assert_allclose(xi.T @ xi, ref_cov, rtol=1e-12)
    np.testing.assert_allclose(xi.sum(axis=0), 0.0, atol=1e-12)


def _correlated_cohort(rng, n=120, k=3):
    """Classes share most labels and an image-level nuisance: strong cross-class covariance."""
    base = rng.random(n) < 0.4
    labels = (base[:, None] ^ (rng.random((n, k)) < 0.1)).astype(int)
    img = rng.normal(size=(n, 1))
    sa = 1.2 * labels + img + 0.6 * rng.normal(size=(n, k))
    sb = 0.6 * labels + img + 0.6 * rng.normal(size=(n, k)) + 0.8 * rng.normal(size=(n, 1))
    return labels, sa, sb


def _auc_columns(labels, scores):
    """Vectorised Mann–Whitney AUC per column (bootstrap helper). [N, K] -> [K]."""
    ranks = np.apply_along_axis(A._midranks, 0, scores)
    m = labels.sum(0)
    n = labels.shape[0] - m
    return ((ranks * labels).sum(0) - m * (m + 1) / 2) / (m * n)


def test_mean_auc_paired_variance_matches_bootstrap():
    rng = np.random.default_rng(0)
    labels, sa, sb = _correlated_cohort(rng)
    names = ["a", "b", "c"]
    pr = A.paired_report(labels, sa, sb, names)
    var = pr["mean"]["variance"]
    boot = []
    for _ in range(1000):
        idx = rng.integers(0, len(labels), len(labels))
        lab = labels[idx]
        if np.any(lab.sum(0) < 2) or np.any(lab.sum(0) > len(lab) - 2):
            continue
        boot.append((_auc_columns(lab, sa[idx]) - _auc_columns(lab, sb[idx])).mean())
    boot_var = np.var(boot, ddof=1)
    assert var == pytest.approx(boot_var, rel=0.25)
    # The test can fail: ignoring the cross-class covariance (diagonal only) is far off.
    diag_only = sum(pr["classes"][c]["variance"] for c in names) / len(names) ** 2
    assert diag_only < 0.7 * boot_var
    # And the per-image formula equals the quadratic form 1/K^2 sum_kl (C^aa + C^bb - C^ab - C^ba).
    _, xa = A.influence_components(labels, sa)
    _, xb = A.influence_components(labels, sb)
    c = xa.T @ xa + xb.T @ xb - xa.T @ xb - xb.T @ xa
    assert var == pytest.approx(c.sum() / 9, rel=1e-12)
    # The multi-class per_class_auc mean variance uses the same components.
    assert A.per_class_auc(labels, sa, names)["mean_auc_variance"] == pytest.approx(
        (xa.T @ xa).sum() / 9, rel=1e-12)


def test_paired_zero_variance_nonzero_difference_is_json_safe():
    labels = np.array([[1], [1], [0], [0]])
    a = np.array([[1.0], [1.0], [0.0], [0.0]])          # AUC 1, every component 1
    b = np.zeros((4, 1))                                # AUC 0.5, all tied
    t = A.paired_report(labels, a, b, ["x"])["classes"]["x"]
    assert t["difference"] == 0.5 and t["variance"] == 0.0
    assert t["p_value"] == 0.0 and t["z"] is None
    json.dumps(t, allow_nan=False)


def test_roc_curve_area_equals_auc_with_ties_and_matches_sklearn():
    from sklearn.metrics import roc_curve as sk_roc_curve

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 200)
    scores = np.round(rng.normal(labels * 0.8, 1.0), 1)  # many ties
    fpr, tpr = A.roc_curve(labels, scores)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    assert area == pytest.approx(A.roc_auc(labels, scores), abs=1e-12)
    sk_fpr, sk_tpr, _ = sk_roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)


def test_roc_curve_hand_case_and_one_sided_labels():
    fpr, tpr = A.roc_curve([1, 0, 1, 0], [0.9, 0.8, 0.8, 0.1])
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 1, 1])
    with pytest.raises(ValueError, match="positives and negatives"):
        A.roc_curve([1, 1], [0.2, 0.3])
