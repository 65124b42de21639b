"""Named families of generated tables, each with its exact optimum (Bayes accuracy, noise floor).

Defaults tuned on one dataset prove little; these families bring what real
tabular streams bring, so `make quality` can show whether the default model
holds up:

- `tutorial`: the SUSY-like rows of the demo (`workload.datagen.synthetic`);
- `heavy-tailed`: log-normal and Pareto features, some with infinite
  variance, and two signed ones with heavy tails on both sides;
- `wide-range`: features whose values span 6 orders of magnitude each, at
  scales from 1e-3 to 1e3;
- `imbalanced`: 30 % positives, with four near-constant columns (one value,
  a rare class-free outlier).

Every non-tutorial family is built the same way, so its posterior is exact:
per row the class is drawn, then independent latent variables given the
class (normal or exponential, with class-specific parameters), then each
feature is a class-free, invertible function of one latent (identity,
`scale * exp(z)`, `scale * sinh(z)`). Inverting the features gives the
latents back, and P(class | row) = P(class | latents) in closed form.
Near-constant columns do not depend on the class and carry no information.
The Bayes-optimal accuracy is the mean of max(posterior, 1 - posterior) over
a large fresh sample (Monte Carlo, with its standard error).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from workload.datagen import synthetic
from workload.datagen.table import SUSY_COLUMNS, SusyData
from workload.datagen.task_families import DEMAND, TICKETS, MulticlassFamily, RegressionFamily
from workload.spec import DataSpec

Floats = npt.NDArray[np.float64]

BAYES_SAMPLES = 2_000_000
"""Monte Carlo rows behind a Bayes-optimal accuracy (standard error about 0.03 points)."""

BAYES_SEED = 20_240_917
"""Seed of the Monte Carlo sample (fresh rows, never the ones produced to Kafka)."""


@dataclass(frozen=True)
class Latent:
    """One latent variable and the feature made from it."""

    name: str
    """The feature's column name."""
    distribution: Literal["normal", "exponential"]
    background: tuple[float, float]
    """Parameters given class 0: normal (mean, std); exponential (rate, unused)."""
    signal: tuple[float, float]
    """Parameters given class 1."""
    transform: Literal["identity", "exp", "sinh"] = "identity"
    """The feature: `z`, `scale * exp(z)` (log-normal or Pareto) or `scale * sinh(z)`."""
    scale: float = 1.0

    def draw(self, labels: npt.NDArray[np.int64], rng: np.random.Generator) -> Floats:
        """The latent of each row, given its class."""
        first = np.where(labels == 1, self.signal[0], self.background[0])
        if self.distribution == "normal":
            second = np.where(labels == 1, self.signal[1], self.background[1])
            return rng.normal(first, second)
        return rng.exponential(1.0 / first)

    def log_density(self, z: Floats, label: int) -> Floats:
        """log p(z | class `label`)."""
        first, second = self.signal if label == 1 else self.background
        if self.distribution == "normal":
            result: Floats = (-0.5 * ((z - first) / second) ** 2
                              - math.log(second * math.sqrt(2.0 * math.pi)))
            return result
        density: Floats = math.log(first) - first * z
        return density

    def feature(self, z: Floats) -> Floats:
        """The feature value of each latent."""
        if self.transform == "exp":
            return self.scale * np.exp(z)
        if self.transform == "sinh":
            return self.scale * np.sinh(z)
        return z

    def latent(self, x: Floats) -> Floats:
        """The latent behind each feature value (the inverse of `feature`)."""
        if self.transform == "exp":
            logged: Floats = np.log(np.maximum(x / self.scale, np.finfo(np.float64).tiny))
            return logged
        if self.transform == "sinh":
            inverse: Floats = np.arcsinh(x / self.scale)
            return inverse
        return x


@dataclass(frozen=True)
class NearConstant:
    """A column that holds one value except, rarely and whatever the class, an outlier."""

    name: str
    value: float
    outlier_share: float = 0.004
    outlier_scale: float = 1000.0

    def draw(self, rows: int, rng: np.random.Generator) -> Floats:
        """The column's values."""
        column = np.full(rows, self.value)
        rare = rng.random(rows) < self.outlier_share
        column[rare] += rng.normal(0.0, self.outlier_scale, int(rare.sum()))
        return column


@dataclass(frozen=True)
class LatentFamily:
    """A family whose features are class-free functions of independent latents."""

    name: str
    description: str
    positive_share: float
    latents: tuple[Latent, ...]
    constants: tuple[NearConstant, ...] = field(default=())

    @property
    def columns(self) -> tuple[str, ...]:
        """Feature names in record order: the latents' features, then the constant columns."""
        return tuple(latent.name for latent in self.latents) + tuple(c.name for c in self.constants)

    def _labels(self, rows: int, rng: np.random.Generator) -> npt.NDArray[np.int64]:
        return (rng.random(rows) < self.positive_share).astype(np.int64)

    def _posterior_of_latents(self, zs: list[Floats]) -> Floats:
        log_odds = np.full(len(zs[0]), math.log(self.positive_share / (1 - self.positive_share)))
        for latent, z in zip(self.latents, zs, strict=True):
            log_odds += latent.log_density(z, 1) - latent.log_density(z, 0)
        posterior: Floats = 1.0 / (1.0 + np.exp(-log_odds))
        return posterior

    def generate(self, rows: int, seed: int = 0) -> SusyData:
        """`rows` rows; the same seed gives the same rows."""
        if rows < 1:
            raise ValueError(f"rows must be at least 1, got {rows}")
        rng = np.random.default_rng(seed)
        labels = self._labels(rows, rng)
        columns = [latent.feature(latent.draw(labels, rng)) for latent in self.latents]
        columns += [constant.draw(rows, rng) for constant in self.constants]
        return SusyData(np.stack(columns, axis=1).astype(np.float32), labels, self.columns)

    def posterior(self, data: SusyData) -> Floats:
        """P(class 1 | row) for generated rows: what the Bayes-optimal classifier predicts."""
        features = data.features.astype(np.float64)
        return self._posterior_of_latents(
            [latent.latent(features[:, index]) for index, latent in enumerate(self.latents)])

    def bayes_optimal_accuracy(self, samples: int = BAYES_SAMPLES,
                               seed: int = BAYES_SEED) -> tuple[float, float]:
        """The best accuracy any classifier reaches on this family, and its standard error."""

        def chunk(count: int, rng: np.random.Generator) -> Floats:
            labels = self._labels(count, rng)
            return self._posterior_of_latents([latent.draw(labels, rng) for latent in self.latents])

        return _monte_carlo(chunk, samples, seed)


@dataclass(frozen=True)
class TutorialFamily:
    """The demo's SUSY-like rows (`workload.datagen.synthetic`)."""

    name: str = "tutorial"
    description: str = "SUSY-like kinematics and derived features, 46 % positives (the demo's data)"

    @property
    def columns(self) -> tuple[str, ...]:
        """The 18 SUSY columns."""
        return SUSY_COLUMNS

    def generate(self, rows: int, seed: int = 0) -> SusyData:
        """`rows` rows; the same seed gives the same rows."""
        return synthetic.generate(rows, seed)

    def posterior(self, data: SusyData) -> Floats:
        """P(signal | row)."""
        return synthetic.bayes_predictions(data)

    def bayes_optimal_accuracy(self, samples: int = BAYES_SAMPLES,
                               seed: int = BAYES_SEED) -> tuple[float, float]:
        """The best accuracy any classifier reaches on this family, and its standard error."""
        return synthetic.bayes_optimal_accuracy(samples, seed)


def _monte_carlo(posteriors: Callable[[int, np.random.Generator], Floats], samples: int,
                 seed: int) -> tuple[float, float]:
    """Mean of max(p, 1 - p) over `samples` posteriors drawn in chunks, and its standard error."""
    rng = np.random.default_rng(seed)
    total, total_sq, done = 0.0, 0.0, 0
    while done < samples:
        count = min(500_000, samples - done)
        posterior = posteriors(count, rng)
        best = np.maximum(posterior, 1.0 - posterior)
        total += float(best.sum())
        total_sq += float((best**2).sum())
        done += count
    mean = total / samples
    return mean, math.sqrt(max(total_sq / samples - mean**2, 0.0) / samples)


def _normal(name: str, background: tuple[float, float], signal: tuple[float, float],
            transform: Literal["identity", "exp", "sinh"] = "identity",
            scale: float = 1.0) -> Latent:
    return Latent(name, "normal", background, signal, transform, scale)


def _pareto(name: str, background_tail: float, signal_tail: float, scale: float) -> Latent:
    """A Pareto feature (`scale * exp(z)`, z exponential): tail index = the rate of z."""
    return Latent(name, "exponential", (background_tail, 0.0), (signal_tail, 0.0), "exp", scale)


HEAVY_TAILED = LatentFamily(
    name="heavy-tailed",
    description="log-normal and Pareto features (tail index down to 1.2), two signed heavy ones",
    positive_share=0.5,
    latents=(
        _normal("amount", (3.0, 1.2), (3.8, 1.0), "exp"),
        _normal("duration", (1.0, 1.4), (1.6, 1.7), "exp"),
        _normal("count", (2.0, 0.8), (1.4, 0.8), "exp"),
        _normal("volume", (5.0, 1.5), (5.0, 0.9), "exp"),
        _normal("size", (0.0, 1.0), (0.6, 1.0), "exp"),
        _normal("latency", (-1.0, 0.9), (-0.5, 1.3), "exp"),
        _pareto("revenue", 2.0, 1.2, 10.0),
        _pareto("followers", 1.4, 2.4, 1.0),
        _pareto("bytes", 2.8, 1.8, 100.0),
        _pareto("clicks", 1.3, 1.9, 1.0),
        _normal("balance", (0.0, 2.0), (0.8, 2.6), "sinh", 100.0),
        _normal("change", (0.4, 1.8), (-0.4, 1.5), "sinh", 5.0),
    ),
)

WIDE_RANGE = LatentFamily(
    name="wide-range",
    description="each feature spans 6 orders of magnitude, at scales from 1e-3 to 1e3",
    positive_share=0.5,
    latents=tuple(
        _normal(f"w{index}", (0.0, 2.5), (shift, 2.5 * ratio), "exp", 10.0 ** exponent)
        for index, (shift, ratio, exponent) in enumerate([
            (1.4, 1.0, -3), (-1.2, 1.1, -2), (1.0, 0.8, -1), (0.0, 1.4, 0), (1.2, 1.0, 1),
            (-1.4, 0.85, 2), (0.8, 1.2, 3), (0.0, 0.7, -2), (-1.0, 1.0, 1), (1.0, 1.15, 2),
        ])
    ),
)

IMBALANCED = LatentFamily(
    name="imbalanced",
    description="30 % positives; four near-constant columns (one value, rare class-free outliers)",
    positive_share=0.3,
    latents=(
        _normal("x0", (0.0, 1.0), (0.9, 1.0)),
        _normal("x1", (0.0, 1.0), (-0.6, 1.3)),
        _normal("x2", (10.0, 2.0), (11.0, 2.0)),
        _normal("x3", (0.0, 1.0), (0.0, 1.8)),
        _normal("x4", (0.0, 0.5), (0.4, 0.5), "exp", 50.0),
        _normal("x5", (0.0, 0.6), (-0.3, 0.6), "exp", 2.0),
        _normal("x6", (100.0, 15.0), (92.0, 15.0)),
        _normal("x7", (0.0, 1.0), (0.5, 0.8)),
        _normal("x8", (-1.0, 1.0), (-1.0, 1.0)),
        _normal("x9", (0.0, 1.0), (0.3, 1.0)),
    ),
    constants=(
        NearConstant("flag_a", 0.0), NearConstant("flag_b", 1.0),
        NearConstant("version", 250.0, outlier_share=0.002, outlier_scale=50.0),
        NearConstant("region", -3.0, outlier_share=0.006, outlier_scale=10.0),
    ),
)

BinaryFamily = LatentFamily | TutorialFamily

Family = BinaryFamily | MulticlassFamily | RegressionFamily

FAMILIES: dict[str, Family] = {
    family.name: family for family in (TutorialFamily(), HEAVY_TAILED, WIDE_RANGE, IMBALANCED,
                                       TICKETS, DEMAND)}
"""Every family by name, the tutorial's first; the binary ones, then `tickets` (multiclass) and
`demand` (regression) from `workload.datagen.task_families`."""


def data_spec(family: Family) -> DataSpec:
    """How a family's records are laid out (binary ones: the tutorial's CSV)."""
    if isinstance(family, MulticlassFamily | RegressionFamily):
        return family.data_spec()
    return DataSpec(features=len(family.columns))
