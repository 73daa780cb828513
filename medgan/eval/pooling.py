"""One estimate from several judge seeds: Rubin's rules, so a CI holds the seeds' spread as well as the test's.

A judge trained with another seed (initialisation, batch order) scores the
same test images differently; at CPU size the mean AUC moves by several
hundredths between seeds. DeLong's variance describes only the finite test
set. Treating the m seeds like Rubin's multiple imputations (Rubin 1987,
"Multiple Imputation for Nonresponse in Surveys", ch. 3):

    q = mean_s q_s                      the pooled estimate
    W = mean_s U_s                      within-seed (DeLong) variance
    B = sum_s (q_s - q)^2 / (m - 1)     between-seed variance
    T = W + (1 + 1/m) B                 total variance
    nu = (m - 1) (1 + W / ((1 + 1/m) B))^2

and the CI is q +- t_{nu} sqrt(T) (nu infinite, the normal quantile, when B = 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats


def pool(estimates: Sequence[float], variances: Sequence[float], level: float = 0.95) -> dict:
    """Rubin's pooled estimate of m >= 1 seeds' estimates and their (DeLong) variances.

    Returns {"mean", "ci_low", "ci_high", "within", "between", "variance",
    "df", "spread" (the seeds' sample standard deviation), "seeds", "values"};
    df None means infinite. With one seed it is that seed's Wald interval.
    """
    q = np.asarray(estimates, np.float64)
    u = np.asarray(variances, np.float64)
    if q.ndim != 1 or q.shape != u.shape or q.size == 0:
        raise ValueError(f"pool: expected as many variances as estimates (>= 1), got {q.shape} and {u.shape}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"pool: level {level} is not in (0, 1)")
    m = q.size
    mean, within = float(q.mean()), float(u.mean())
    between = float(q.var(ddof=1)) if m > 1 else 0.0
    extra = (1.0 + 1.0 / m) * between
    total = within + extra
    df = (m - 1) * (1.0 + within / extra) ** 2 if extra > 0.0 else None
    quantile = stats.norm.ppf(0.5 + level / 2) if df is None else stats.t.ppf(0.5 + level / 2, df)
    half = float(quantile) * math.sqrt(total)
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "within": within, "between": between,
            "variance": total, "df": df, "spread": math.sqrt(between), "seeds": m,
            "values": [float(x) for x in q]}


def test(pooled: dict) -> dict:
    """{"z", "p_value"}: the two-sided test of a pooled estimate against 0, t with Rubin's df (normal if None).

    z is None (and p 0) for a nonzero estimate with zero variance, as in eval/auc's DeLong test.
    """
    mean, variance, df = pooled["mean"], pooled["variance"], pooled["df"]
    if variance <= 0.0:
        return {"z": 0.0 if mean == 0.0 else None, "p_value": 1.0 if mean == 0.0 else 0.0}
    z = mean / math.sqrt(variance)
    tail = stats.norm.sf(abs(z)) if df is None else stats.t.sf(abs(z), df)
    return {"z": float(z), "p_value": float(2.0 * tail)}
