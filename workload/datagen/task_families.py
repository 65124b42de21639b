"""Generated tables of the other tasks, each with the best any model can do computed exactly.

- `tickets` (multiclass): support tickets routed to one of 6 queues, two of
  them rare (5 % and 3 %); three numeric fields (two log-normal) and three
  categorical ones (4, 12 and 50 values: one-hot and embedded). Given its
  queue, every field is drawn independently (numeric: normal in a latent,
  then a class-free invertible transform; categorical: from a table of
  probabilities per queue), so P(queue | record) is exact in closed form
  (Bayes' rule over the queues) and the Bayes-optimal accuracy is the mean
  of max over queues of the posterior, over a large fresh sample (Monte
  Carlo, with its standard error).
- `demand` (regression): a number that is a smooth function of heavy-tailed
  fields (log-normal, Pareto with tail index 1.3, a signed `sinh` one) and a
  categorical region, plus normal noise of known standard deviation
  `noise`. The conditional mean E[y | record] is that function, so the
  noise floor (the RMSE of the best possible model) is exactly `noise`. Two
  heavy-tailed fields carry no signal.

Records are JSON for `tickets` (nested fields) and CSV with a label column
for `demand`: `data_spec()` says how each family's records are laid out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from workload.data.decoded import texts
from workload.datagen.table import SusyData
from workload.spec import DataSpec

Floats = npt.NDArray[np.float64]

BAYES_SAMPLES = 2_000_000
"""Monte Carlo rows behind a Bayes-optimal accuracy."""

BAYES_SEED = 20_240_917
"""Seed of the Monte Carlo sample (fresh rows, never the ones produced to Kafka)."""

TABLE_SEED = 5_318_008
"""Seed of the per-queue probability tables (fixed: part of the family's definition)."""


@dataclass(frozen=True)
class ClassNumeric:
    """A numeric field: normal in a latent with a mean per class, then `scale * exp(z)` or `z`."""

    name: str
    means: tuple[float, ...]
    std: float
    transform: Literal["identity", "exp"] = "identity"
    scale: float = 1.0

    def value(self, z: Floats) -> Floats:
        """The field's value of each latent."""
        return self.scale * np.exp(z) if self.transform == "exp" else z

    def latent(self, x: Floats) -> Floats:
        """The latent behind each value."""
        if self.transform == "exp":
            logged: Floats = np.log(np.maximum(x / self.scale, np.finfo(np.float64).tiny))
            return logged
        return x


@dataclass(frozen=True)
class ClassCategorical:
    """A categorical field drawn from a table of probabilities per class (Dirichlet-made)."""

    name: str
    size: int
    concentration: float
    """Dirichlet parameter of each class's table: small = values tell the classes apart."""

    @property
    def values(self) -> tuple[str, ...]:
        """The field's values."""
        prefix = self.name.rsplit(".", 1)[-1][:2]
        return tuple(f"{prefix}{index:02d}" for index in range(self.size))

    def table(self, classes: int) -> Floats:
        """[classes, size] probabilities (the same on every call)."""
        seed = TABLE_SEED + sum(ord(character) for character in self.name)
        rng = np.random.default_rng(seed)
        table: Floats = rng.dirichlet(np.full(self.size, self.concentration), size=classes)
        return table


@dataclass(frozen=True)
class MulticlassFamily:
    """A multiclass family with class-conditionally independent fields (see the module)."""

    name: str
    description: str
    classes: tuple[str, ...]
    priors: tuple[float, ...]
    numeric: tuple[ClassNumeric, ...]
    categorical: tuple[ClassCategorical, ...]
    label: str = "queue"
    task: Literal["multiclass"] = "multiclass"

    @property
    def columns(self) -> tuple[str, ...]:
        """The numeric fields, in record order."""
        return tuple(field.name for field in self.numeric)

    def data_spec(self) -> DataSpec:
        """How the records are laid out: JSON, numeric then categorical fields, then the label."""
        names = [field.name for field in self.categorical]
        return DataSpec(format="json", columns=[*self.columns, *names, self.label],
                        label=self.label, categorical=names)

    def _draw(self, rows: int, rng: np.random.Generator
              ) -> tuple[npt.NDArray[np.int64], list[Floats], npt.NDArray[np.int64]]:
        labels = rng.choice(len(self.classes), size=rows, p=np.array(self.priors))
        latents = [rng.normal(np.array(field.means)[labels], field.std) for field in self.numeric]
        picks = np.stack([_pick(field.table(len(self.classes))[labels], rng)
                          for field in self.categorical], axis=1)
        return labels, latents, picks

    def generate(self, rows: int, seed: int = 0) -> SusyData:
        """`rows` records; the same seed gives the same records."""
        rng = np.random.default_rng(seed)
        labels, latents, picks = self._draw(rows, rng)
        features = np.stack([field.value(z) for field, z in zip(self.numeric, latents,
                                                                 strict=True)], axis=1)
        names = [field.values for field in self.categorical]
        categories = texts((names[column][index] for row in picks.tolist()
                            for column, index in enumerate(row)), picks.shape)
        return SusyData(features.astype(np.float32), labels.astype(np.int64), self.columns,
                        categories, tuple(field.name for field in self.categorical),
                        self.classes)

    def _posterior(self, latents: list[Floats], picks: npt.NDArray[np.int64]) -> Floats:
        scores = np.tile(np.log(np.array(self.priors)), (len(picks), 1))
        for numeric, z in zip(self.numeric, latents, strict=True):
            means = np.array(numeric.means)
            scores += -0.5 * ((z[:, None] - means[None, :]) / numeric.std) ** 2
        for column, categorical in enumerate(self.categorical):
            table = categorical.table(len(self.classes))
            scores += np.log(table[:, picks[:, column]]).T
        scores -= scores.max(axis=1, keepdims=True)
        posterior: Floats = np.exp(scores)
        normalised: Floats = posterior / posterior.sum(axis=1, keepdims=True)
        return normalised

    def posterior(self, data: SusyData) -> Floats:
        """P(class | record) [rows, classes] for generated records."""
        assert data.categories is not None
        latents = [field.latent(data.features[:, index].astype(np.float64))
                   for index, field in enumerate(self.numeric)]
        lookup = [{value: index for index, value in enumerate(field.values)}
                  for field in self.categorical]
        picks = np.array([[lookup[column][value] for column, value in enumerate(row)]
                          for row in data.categories.tolist()], np.int64)
        return self._posterior(latents, picks)

    def bayes_optimal_accuracy(self, samples: int = BAYES_SAMPLES,
                               seed: int = BAYES_SEED) -> tuple[float, float]:
        """The best accuracy any classifier reaches on this family, and its standard error."""
        rng = np.random.default_rng(seed)
        total, total_sq, done = 0.0, 0.0, 0
        while done < samples:
            count = min(250_000, samples - done)
            _, latents, picks = self._draw(count, rng)
            best = self._posterior(latents, picks).max(axis=1)
            total += float(best.sum())
            total_sq += float((best ** 2).sum())
            done += count
        mean = total / samples
        return mean, math.sqrt(max(total_sq / samples - mean ** 2, 0.0) / samples)


def _pick(probabilities: Floats, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """One index per row, drawn from that row's probabilities."""
    cumulative = np.cumsum(probabilities, axis=1)
    chosen = (rng.random((len(probabilities), 1)) > cumulative).sum(axis=1)
    picked: npt.NDArray[np.int64] = np.minimum(chosen, probabilities.shape[1] - 1).astype(np.int64)
    return picked


@dataclass(frozen=True)
class RegressionFamily:
    """A regression family: y = a smooth function of heavy-tailed fields + normal noise."""

    name: str
    description: str
    noise: float
    """Standard deviation of the noise: the RMSE of the best possible model."""
    regions: tuple[float, ...] = (-3.0, -1.5, 0.0, 0.5, 1.5, 3.0)
    """The additive effect of each region."""
    label: str = "demand"
    task: Literal["regression"] = "regression"

    columns: tuple[str, ...] = ("price", "balance", "followers", "latency", "clicks",
                                "temperature")
    """Numeric fields in record order (`clicks` and `temperature` carry no signal)."""

    def data_spec(self) -> DataSpec:
        """How the records are laid out: CSV, numeric fields, the region, the label."""
        return DataSpec(columns=[*self.columns, "region", self.label], label=self.label,
                        categorical=["region"])

    @staticmethod
    def _mean(latents: Floats, regions: npt.NDArray[np.int64],
              effects: tuple[float, ...]) -> Floats:
        price, balance, followers, latency = latents.T
        signal: Floats = 40.0 + 4.0 * (0.8 * price + 0.6 * np.tanh(1.2 * balance)
                                       + 0.5 * (followers - 1.0) + 0.4 * np.sin(1.5 * latency))
        mean: Floats = signal + np.array(effects)[regions]
        return mean

    def generate(self, rows: int, seed: int = 0) -> SusyData:
        """`rows` records; the same seed gives the same records."""
        rng = np.random.default_rng(seed)
        latents = np.stack([rng.normal(size=rows), rng.normal(size=rows),
                            rng.exponential(1.0, rows), rng.normal(size=rows)], axis=1)
        regions = rng.integers(0, len(self.regions), rows)
        target = self._mean(latents, regions, self.regions) + rng.normal(0.0, self.noise, rows)
        price, balance, followers, latency = latents.T
        features = np.stack([20.0 * np.exp(1.1 * price), 100.0 * np.sinh(1.5 * balance),
                             np.exp(followers / 1.3), 0.05 * np.exp(0.9 * latency),
                             np.exp(rng.exponential(1.0 / 1.1, rows)),
                             rng.standard_t(3, rows) * 8.0 + 15.0], axis=1)
        names = [f"r{index}" for index in range(len(self.regions))]
        return SusyData(features.astype(np.float32), np.zeros(rows, np.int64), self.columns,
                        texts((names[index] for index in regions.tolist()), (rows, 1)),
                        ("region",), None, target)

    def optimum(self, data: SusyData) -> Floats:
        """E[y | record] of generated records: what the best possible model predicts."""
        assert data.categories is not None
        x = data.features.astype(np.float64)
        latents = np.stack([np.log(x[:, 0] / 20.0) / 1.1, np.arcsinh(x[:, 1] / 100.0) / 1.5,
                            np.log(x[:, 2]) * 1.3, np.log(x[:, 3] / 0.05) / 0.9], axis=1)
        regions = np.array([int(value[1:]) for value in data.categories[:, 0].tolist()])
        return self._mean(latents, regions, self.regions)


TICKETS = MulticlassFamily(
    name="tickets",
    description="6 queues (two rare: 5 %, 3 %), 3 numeric and 3 categorical fields (4, 12, 50 "
                "values), JSON",
    classes=("billing", "bug", "feature", "account", "outage", "security"),
    priors=(0.32, 0.26, 0.20, 0.14, 0.05, 0.03),
    numeric=(
        ClassNumeric("text.length", (4.0, 4.6, 5.0, 3.6, 4.2, 4.8), 0.7, "exp"),
        ClassNumeric("priority", (0.0, 0.8, -0.5, 0.3, 2.0, 1.5), 1.0),
        ClassNumeric("account.age_days", (6.0, 5.0, 5.5, 6.5, 4.0, 5.0), 1.0, "exp"),
    ),
    categorical=(
        ClassCategorical("channel", 4, 1.0),
        ClassCategorical("product", 12, 0.6),
        ClassCategorical("account.country", 50, 3.0),
    ),
)

DEMAND = RegressionFamily(
    name="demand",
    description="heavy-tailed fields (log-normal, Pareto 1.3, signed sinh), a region, "
                "normal noise of 2.0",
    noise=2.0,
)
