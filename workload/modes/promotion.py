"""When an online-learned model may replace the served one: a paired test on the same records.

Both models score each labelled record before the learner trains on it
(prequential, Gama et al. 2013), so each record gives a pair of errors: the
challenger's (the learner's model as it was at that record) and the serving
model's. Over the last `serve.promotion.window` pairs:
- classification (errors are 0 or 1): McNemar's test on the records only one
  model got right, `a` the challenger's and `b` the serving model's:
  `M = (|a - b| - 1)^2 / (a + b)`; the challenger is promoted when `a > b` and
  `M > 6.635`, which rejects "equally good" at 99 % (chi-squared, one degree
  of freedom). A few lucky batches do not promote a model;
- regression (errors are squared errors): promoted when the challenger's mean
  squared error is below the serving model's by at least
  `serve.promotion.minImprovement` of it (a relative margin).
Numpy only: the decision is testable without a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

MCNEMAR_CRITICAL_99 = 6.635
"""McNemar's statistic above which two classifiers differ at 99 % (chi-squared, 1 df)."""

Floats = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Decision:
    """The outcome of one comparison of a challenger with the serving model."""

    promoted: bool
    metric: Literal["accuracy", "rmse"]
    """What the scores are: accuracy (classification, higher is better) or RMSE (regression,
    lower is better)."""
    challenger_score: float
    serving_score: float
    records: int
    """Paired records compared."""
    statistic: float | None
    """McNemar's statistic (classification)."""
    why: str
    """One sentence: the figures that decided it."""


def mcnemar(challenger_only: int, serving_only: int) -> float:
    """McNemar's statistic with continuity correction (0 when no record tells them apart)."""
    total = challenger_only + serving_only
    return 0.0 if total == 0 else (abs(challenger_only - serving_only) - 1) ** 2 / total


class PairedWindow:
    """The last `size` pairs of errors (challenger, serving), in a ring."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._errors = np.zeros((size, 2), np.float32)
        self._next = 0
        self.count = 0
        """Pairs held (at most `size`)."""

    def add(self, challenger: Floats, serving: Floats) -> None:
        """Append a batch of pairs; the oldest fall out."""
        pairs = np.stack([np.asarray(challenger, np.float32).reshape(-1),
                          np.asarray(serving, np.float32).reshape(-1)], axis=1)[-self.size:]
        positions = (self._next + np.arange(len(pairs))) % self.size
        self._errors[positions] = pairs
        self._next = int((self._next + len(pairs)) % self.size)
        self.count = min(self.size, self.count + len(pairs))

    @property
    def full(self) -> bool:
        """Whether `size` pairs are held."""
        return self.count == self.size

    def pairs(self) -> Floats:
        """The pairs held, [count, 2] (challenger, serving)."""
        held: Floats = self._errors[:self.count] if not self.full else self._errors
        return held

    def clear(self) -> None:
        """Forget every pair (the serving model changed)."""
        self._next = self.count = 0


def decide(window: PairedWindow, classifies: bool, min_improvement: float) -> Decision:
    """Whether the challenger beats the serving model on the window's pairs."""
    pairs = window.pairs()
    challenger, serving = pairs[:, 0], pairs[:, 1]
    if classifies:
        wins = int(np.count_nonzero((challenger == 0) & (serving != 0)))
        losses = int(np.count_nonzero((challenger != 0) & (serving == 0)))
        statistic = mcnemar(wins, losses)
        promoted = wins > losses and statistic > MCNEMAR_CRITICAL_99
        scores = 1.0 - float(challenger.mean()), 1.0 - float(serving.mean())
        why = (f"over {len(pairs)} records the challenger alone was right on {wins}, the "
               f"serving model alone on {losses}: McNemar {statistic:.2f} "
               f"({'above' if statistic > MCNEMAR_CRITICAL_99 else 'not above'} "
               f"{MCNEMAR_CRITICAL_99} for 99 %); accuracy {scores[0]:.4f} against "
               f"{scores[1]:.4f}")
        return Decision(promoted, "accuracy", scores[0], scores[1], len(pairs), statistic, why)
    mse = float(challenger.mean()), float(serving.mean())
    promoted = mse[0] < (1.0 - min_improvement) * mse[1]
    rmse = float(np.sqrt(mse[0])), float(np.sqrt(mse[1]))
    why = (f"over {len(pairs)} records the challenger's mean squared error is {mse[0]:.6g}, the "
           f"serving model's {mse[1]:.6g}: {'at least' if promoted else 'less than'} "
           f"{100 * min_improvement:g} % lower is needed")
    return Decision(promoted, "rmse", rmse[0], rmse[1], len(pairs), None, why)
