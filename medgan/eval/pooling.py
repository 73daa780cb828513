"""One estimate from several judge seeds, with an interval that holds the seeds' spread as well as the test's.

A judge trained with another seed (initialisation, batch order) scores the
same test images differently; at CPU size the mean AUC moves by a few
hundredths between seeds, and DeLong's variance, which holds the judge fixed
and counts only test images, does not show it. The question a benchmark point
asks is about the training procedure: what AUC does a judge trained on these
images reach on this test population, over the randomness of its training?
With m seeds, estimates q_s and DeLong variances U_s:

    q = mean_s q_s                      the pooled estimate
    W = mean_s U_s                      test-set variance (shared by every seed, so not divided by m)
    B = sum_s (q_s - q)^2 / (m - 1)     between-seed variance
    T = W + B / m                       the variance of q about the procedure's expected AUC
    nu = (m - 1) (T / (B / m))^2        Satterthwaite's degrees of freedom (W taken as known)

and the interval is q +- t_nu sqrt(T) (the normal quantile when B = 0).
mean_s U_s overstates the test-set variance of the seeds' mean: judges err
partly on the same images and partly on different ones. Where the scores are
at hand, W is that variance itself (eval/auc.seed_mean_variances: DeLong on
the seeds' mean influence per image; on the oracle ladder 0.4-0.5 of
mean_s U_s). B still holds each judge's own share of test-set noise, so
the interval stays conservative. Rubin's rules for multiple imputation would add (1 + 1/m) B
instead of B / m; they answer another question (the spread of one more
judge's AUC), not the procedure's mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats


def pool(estimates: Sequence[float], variances: Sequence[float], level: float = 0.95,
         within: float | None = None) -> dict:
    """The seeds' mean estimate and its interval (module docstring) from m >= 1 estimates and DeLong variances.

    within: the test-set variance of the seeds' mean itself, when the scores
    are at hand (eval/auc.seed_mean_variances); it replaces W = mean_s U_s,
    its upper bound.

    Returns {"mean", "ci_low", "ci_high", "within" (W), "between" (B),
    "variance" (T), "df" (None: infinite), "spread" (the seeds' sample
    standard deviation, sqrt B), "seeds", "values"}. One seed gives its own
    Wald interval.
    """
    q = np.asarray(estimates, np.float64)
    u = np.asarray(variances, np.float64)
    if q.ndim != 1 or q.shape != u.shape or q.size == 0:
        raise ValueError(f"pool: expected as many variances as estimates (>= 1), got {q.shape} and {u.shape}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"pool: level {level} is not in (0, 1)")
    m = q.size
    mean = float(q.mean())
    within = float(u.mean()) if within is None else float(within)
    between = float(q.var(ddof=1)) if m > 1 else 0.0
    seed_part = between / m
    total = within + seed_part
    df = (m - 1) * (total / seed_part) ** 2 if seed_part > 0.0 else None
    quantile = stats.norm.ppf(0.5 + level / 2) if df is None else stats.t.ppf(0.5 + level / 2, df)
    half = float(quantile) * math.sqrt(total)
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "within": within, "between": between,
            "variance": total, "df": df, "spread": math.sqrt(between), "seeds": m,
            "values": [float(x) for x in q]}


def test(pooled: dict) -> dict:
    """{"z", "p_value"}: the two-sided test of a pooled estimate against 0, t with its df (normal if None).

    z is None (and p 0) for a nonzero estimate with zero variance, as in eval/auc's DeLong test.
    """
    mean, variance, df = pooled["mean"], pooled["variance"], pooled["df"]
    if variance <= 0.0:
        return {"z": 0.0 if mean == 0.0 else None, "p_value": 1.0 if mean == 0.0 else 0.0}
    z = mean / math.sqrt(variance)
    tail = stats.norm.sf(abs(z)) if df is None else stats.t.sf(abs(z), df)
    return {"z": float(z), "p_value": float(2.0 * tail)}
