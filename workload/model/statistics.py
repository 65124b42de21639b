"""Training statistics of the features, and the per-feature preprocessing they call for.

Statistics are gathered while the training data is read, batch by batch
(`RunningStatistics`): exact means and variances (float64 sums) and a
uniform sample of rows for quantiles and skewness (at most `SAMPLE_VALUES`
numbers), so nothing needs every record in memory. The sample is the rows
whose content hash is smallest (a bottom-k sample): the same rows in
whatever order partitions deliver them, so a resumed trainer, which reads
the data again, chooses the same preprocessing.

`plan_features` turns them into one transform per feature (`robust`
preprocessing); the model applies it (`workload.model.preprocessing`), so
an exported model still takes raw features:

- `drop` a near-constant column: when 99 % of its values are one value (or
  lie within a millionth of their level), standardising would turn its rare
  outliers into huge inputs and it carries almost nothing;
- `signed-log` a heavy-tailed one: |skewness| above `SKEW_LIMIT` or its
  99.9 % range more than `TAIL_RATIO_LIMIT` times its interquartile range
  (a normal feature has about 4.9, an exponential one 6.9, a log-normal one
  with sigma 0.7 about 10). Positive features become log1p(x / q0.5%), close
  to log(x) over their whole range; features of both signs
  sign(x - median) * log1p(|x - median| / MAD);
- `standardize` every other one.

Every kept feature is then clipped to its 0.05 % and 99.95 % quantiles (in
the transformed scale: one wild value at serving time cannot saturate the
network) and standardised with the mean and standard deviation of the
clipped, transformed sample. No TensorFlow here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Transform = Literal["standardize", "signed-log", "drop"]

SAMPLE_VALUES = 4_000_000
"""Numbers kept in the row sample (16 MB of float32): 100,000 rows of up to 40 features."""

SAMPLE_ROWS = 100_000
"""Rows kept in the sample at most: quantiles of 0.05 % rest on 50 rows."""

HASH_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
"""Odd 64-bit constant (the golden ratio's) that mixes row bytes into a hash."""

NEAR_CONSTANT_SHARE = 0.99
"""A column with this share of its values equal (or within `NEAR_CONSTANT_RELATIVE` of their
level) is dropped."""

NEAR_CONSTANT_RELATIVE = 1e-6
"""Spread of the central `NEAR_CONSTANT_SHARE` of values, relative to their level, below which
a column counts as constant."""

SKEW_LIMIT = 2.0
"""|Sample skewness| above which a feature is log-transformed."""

TAIL_RATIO_LIMIT = 10.0
"""(q99.95 % - q0.05 %) / interquartile range above which a feature is log-transformed."""

CLIP_QUANTILES = (0.0005, 0.9995)
"""Quantiles of the transformed training values that bound each feature."""

TINY = 1e-12
"""Smallest scale or standard deviation used (a guard against dividing by zero)."""


@dataclass(frozen=True)
class FeatureStatistics:
    """What the training data looks like, per feature."""

    rows: int
    mean: Floats
    variance: Floats
    sample: npt.NDArray[np.float32]
    """A uniform sample of the rows, [rows kept, features]."""


def row_hashes(features: npt.NDArray[np.float32]) -> npt.NDArray[np.uint64]:
    """A 64-bit hash of each row's bytes (equal rows, equal hashes)."""
    words = np.ascontiguousarray(features, dtype=np.float32).view(np.uint32).astype(np.uint64)
    hashes = np.full(len(features), np.uint64(len(features[0]) if len(features) else 0))
    with np.errstate(over="ignore"):
        for column in words.T:
            hashes = (hashes ^ column) * HASH_MULTIPLIER
            hashes ^= hashes >> np.uint64(29)
    return hashes


class RunningStatistics:
    """Means, variances and a row sample of features accumulated batch by batch."""

    def __init__(self, n_features: int) -> None:
        self.rows = 0
        self.total = np.zeros(n_features, np.float64)
        self.total_squares = np.zeros(n_features, np.float64)
        self.capacity = max(1, min(SAMPLE_ROWS, SAMPLE_VALUES // max(n_features, 1)))
        self._sample = np.zeros((0, n_features), np.float32)
        self._hashes = np.zeros(0, np.uint64)
        self._pending: list[npt.NDArray[np.float32]] = []
        self._pending_rows = 0

    def add(self, features: npt.NDArray[np.float32]) -> None:
        """Account for a batch of rows (float32 [rows, n_features])."""
        values = features.astype(np.float64)
        self.total += values.sum(axis=0)
        self.total_squares += np.square(values).sum(axis=0)
        self.rows += len(features)
        self._pending.append(features.astype(np.float32))
        self._pending_rows += len(features)
        if self._pending_rows >= self.capacity:
            self._keep_smallest()

    def _keep_smallest(self) -> None:
        """Merge the pending rows into the sample; keep the `capacity` rows of smallest hash, in
        hash order."""
        pending = self._pending
        self._sample = np.concatenate([self._sample, *pending])
        self._hashes = np.concatenate([self._hashes, *(row_hashes(rows) for rows in pending)])
        self._pending, self._pending_rows = [], 0
        order = np.argsort(self._hashes, kind="stable")[:self.capacity]
        self._sample, self._hashes = self._sample[order], self._hashes[order]

    def result(self) -> FeatureStatistics:
        """The statistics so far (zeros and ones when no row was seen)."""
        if self.rows == 0:
            return FeatureStatistics(0, np.zeros_like(self.total), np.ones_like(self.total),
                                     self._sample)
        self._keep_smallest()
        mean = self.total / self.rows
        variance = np.maximum(self.total_squares / self.rows - np.square(mean), 0.0)
        return FeatureStatistics(self.rows, mean, variance, self._sample.copy())


def merge_statistics(parts: Sequence[FeatureStatistics]) -> FeatureStatistics:
    """The statistics of the rows of every part (disjoint rows, e.g. each training worker's), as
    one `RunningStatistics` over all of them gives them (up to float rounding): rows and sums
    add, and the sample is the union's rows of smallest hash (a bottom-k sample of the union is
    the bottom k of the parts' bottom-k samples)."""
    rows = sum(part.rows for part in parts)
    width = parts[0].mean.shape[0]
    if rows == 0:
        return FeatureStatistics(0, np.zeros(width), np.ones(width),
                                 np.zeros((0, width), np.float32))
    total = sum((part.mean * part.rows for part in parts), np.zeros(width))
    squares = sum(((part.variance + np.square(part.mean)) * part.rows for part in parts),
                  np.zeros(width))
    mean = total / rows
    variance = np.maximum(squares / rows - np.square(mean), 0.0)
    running = RunningStatistics(width)
    sample = np.concatenate([part.sample for part in parts])
    order = np.argsort(row_hashes(sample), kind="stable")[:running.capacity]
    return FeatureStatistics(rows, mean, variance, sample[order])


def feature_statistics(features: npt.NDArray[np.float32]) -> FeatureStatistics:
    """The statistics of float32 [rows, n_features], all at once."""
    running = RunningStatistics(features.shape[1])
    running.add(features)
    return running.result()


@dataclass(frozen=True)
class FeaturePlan:
    """One transform per feature, with the numbers that apply it and why it was chosen."""

    transforms: tuple[Transform, ...]
    reasons: tuple[str, ...]
    center: Floats
    """Subtracted before the signed log (0 for positive features)."""
    scale: Floats
    """Divides the distance to `center` inside the log."""
    low: Floats
    """Clip bounds, in the transformed scale."""
    high: Floats
    mean: Floats
    """Mean and standard deviation of the clipped, transformed values."""
    std: Floats

    def counts(self) -> dict[str, int]:
        """How many features got each transform."""
        return {kind: self.transforms.count(kind) for kind in ("standardize", "signed-log", "drop")
                if kind in self.transforms}

    def summary(self) -> str:
        """One line: `12 standardize, 4 signed-log, 2 drop`."""
        return ", ".join(f"{count} {kind}" for kind, count in self.counts().items())


def signed_log(values: Floats, center: float | Floats, scale: float | Floats) -> Floats:
    """sign(x - center) * log1p(|x - center| / scale): log-like for large values, any sign."""
    distance = values - center
    result: Floats = np.sign(distance) * np.log1p(np.abs(distance) / scale)
    return result


def _skewness(column: Floats) -> float:
    spread = column.std()
    if spread <= TINY:
        return 0.0
    return float(np.mean(((column - column.mean()) / spread) ** 3))


def _plan_one(column: Floats) -> tuple[Transform, str, float, float]:
    """The transform of one feature's sample, why, and its center and scale."""
    share = (1.0 - NEAR_CONSTANT_SHARE) / 2
    q_low, q1, median, q3, q_high = np.quantile(column, [share, 0.25, 0.5, 0.75, 1.0 - share])
    if q_high - q_low <= NEAR_CONSTANT_RELATIVE * abs(median):
        return ("drop", f"near-constant: {NEAR_CONSTANT_SHARE:.0%} of values at {median:.6g}",
                0.0, 1.0)
    tail_low, tail_high = np.quantile(column, CLIP_QUANTILES)
    ratio = (tail_high - tail_low) / max(q3 - q1, TINY)
    skew = _skewness(column)
    if abs(skew) <= SKEW_LIMIT and ratio <= TAIL_RATIO_LIMIT:
        return "standardize", f"skewness {skew:.2f}, tail ratio {ratio:.1f}", 0.0, 1.0
    why = f"heavy-tailed: skewness {skew:.2f}, tail ratio {ratio:.1f}"
    if q_low > 0:
        return "signed-log", why, 0.0, float(q_low)
    deviation = float(np.median(np.abs(column - median)))
    return "signed-log", why, float(median), max(deviation, (q_high - q_low) / 100, TINY)


def plan_features(statistics: FeatureStatistics) -> FeaturePlan:
    """The robust transform of each feature, from the training statistics."""
    sample = statistics.sample.astype(np.float64)
    width = sample.shape[1]
    if len(sample) == 0:
        nothing = np.zeros(width)
        standardize: tuple[Transform, ...] = tuple("standardize" for _ in range(width))
        return FeaturePlan(standardize, ("no training rows",) * width, nothing,
                           np.ones(width), np.full(width, -np.inf), np.full(width, np.inf),
                           nothing, np.ones(width))
    transforms: list[Transform] = []
    reasons: list[str] = []
    numbers = np.zeros((6, width))
    for index in range(width):
        column = sample[:, index]
        kind, why, center, scale = _plan_one(column)
        values = signed_log(column, center, scale) if kind == "signed-log" else column
        low, high = np.quantile(values, CLIP_QUANTILES)
        clipped = np.clip(values, low, high)
        transforms.append(kind)
        reasons.append(why)
        numbers[:, index] = (center, scale, low, high, clipped.mean(), max(clipped.std(), TINY))
    return FeaturePlan(tuple(transforms), tuple(reasons), *numbers)
