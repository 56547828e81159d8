"""Means and Student-t confidence intervals over seeds (SPEC §6: every number with a CI).

Pure Python so the statistics need nothing beyond the standard library: the t quantile
comes from the regularized incomplete beta function (a continued fraction, as in
Numerical Recipes §6.4) inverted by bisection, accurate to ~1e-9 (relative).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence


def _incomplete_beta_fraction(a: float, b: float, x: float) -> float:
  """The continued fraction of I_x(a, b), by the modified Lentz method."""
  tiny, eps = 1e-300, 1e-15
  qab, qap, qam = a + b, a + 1.0, a - 1.0
  c, d = 1.0, 1.0 - qab * x / qap
  d = 1.0 / (d if abs(d) > tiny else tiny)
  h = d
  for m in range(1, 1000):
    m2 = 2 * m
    for numerator in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                      -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
      d = 1.0 + numerator * d
      d = 1.0 / (d if abs(d) > tiny else tiny)
      c = 1.0 + numerator / c
      c = c if abs(c) > tiny else tiny
      h *= d * c
    if abs(d * c - 1.0) < eps:
      break
  return h


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
  """I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
  if x <= 0.0:
    return 0.0
  if x >= 1.0:
    return 1.0
  log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x)
               + b * math.log1p(-x))
  # The fraction converges fast only on one side of the mean; use the symmetry on the other.
  if x < (a + 1.0) / (a + b + 2.0):
    return math.exp(log_front) * _incomplete_beta_fraction(a, b, x) / a
  return 1.0 - math.exp(log_front) * _incomplete_beta_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, dof: float) -> float:
  """P(T <= t) for Student's t with `dof` degrees of freedom."""
  tail = 0.5 * regularized_incomplete_beta(dof / 2.0, 0.5, dof / (dof + t * t))
  return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, dof: float) -> float:
  """The t with P(T <= t) = p, e.g. t_quantile(0.975, 2) = 4.3027."""
  if not 0.0 < p < 1.0:
    raise ValueError(f't_quantile needs 0 < p < 1, got {p}.')
  if dof <= 0:
    raise ValueError(f't_quantile needs dof > 0, got {dof}.')
  if p < 0.5:
    return -t_quantile(1.0 - p, dof)
  if p == 0.5:
    return 0.0
  # Solve I_x(dof/2, 1/2) = 2(1 - p) for x = dof / (dof + t²); I_x rises with x.
  target, lo, hi = 2.0 * (1.0 - p), 0.0, 1.0
  for _ in range(200):
    mid = 0.5 * (lo + hi)
    if mid in (lo, hi):
      break
    if regularized_incomplete_beta(dof / 2.0, 0.5, mid) < target:
      lo = mid
    else:
      hi = mid
  x = 0.5 * (lo + hi)
  return math.sqrt(dof * (1.0 - x) / x)


@dataclasses.dataclass(frozen=True)
class Summary:
  """Mean, sample standard deviation and CI half-width (None when n < 2) of n values."""
  n: int
  mean: float
  std: float | None
  ci: float | None
  confidence: float = 0.95

  @property
  def low(self) -> float | None:
    return None if self.ci is None else self.mean - self.ci

  @property
  def high(self) -> float | None:
    return None if self.ci is None else self.mean + self.ci


def summarize(values: Sequence[float], confidence: float = 0.95) -> Summary:
  """mean ± t_{(1+c)/2, n-1} · s / √n; with one value the CI is undefined (None)."""
  values = [float(v) for v in values]
  n = len(values)
  if n == 0:
    raise ValueError('summarize needs at least one value.')
  mean = math.fsum(values) / n
  if n == 1:
    return Summary(1, mean, None, None, confidence)
  std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
  ci = t_quantile(0.5 + confidence / 2.0, n - 1) * std / math.sqrt(n)
  return Summary(n, mean, std, ci, confidence)


def detectable(s: Summary, power: float = 0.8) -> float | None:
  """The smallest true difference a paired comparison of this spread and n detects with
  probability `power` (two-sided test at 1 − confidence): (t_{(1+c)/2} + t_{power}) · s / √n,
  about 1.4 times the CI half-width for large n."""
  if s.std is None:
    return None
  dof = s.n - 1
  return ((t_quantile(0.5 + s.confidence / 2.0, dof) + t_quantile(power, dof))
          * s.std / math.sqrt(s.n))


def format_summary(s: Summary) -> str:
  """'6.571 ± 0.012' with the mean rounded to the CI's second significant digit."""
  if s.ci is None:
    return f'{s.mean:.4g} (n=1, no CI)'
  if not math.isfinite(s.mean) or not math.isfinite(s.ci):
    return f'{s.mean} ± {s.ci}'
  if s.ci == 0:
    return f'{s.mean:.6g} ± 0'
  decimals = max(0, 1 - math.floor(math.log10(s.ci)))
  if abs(s.mean) >= 1e6 or decimals > 8:
    return f'{s.mean:.4g} ± {s.ci:.2g}'
  return f'{s.mean:.{decimals}f} ± {s.ci:.{decimals}f}'
