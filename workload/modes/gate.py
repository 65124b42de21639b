"""The promotion gate of a job that learns online and serves: challengers in, promotions out.

The online learner hands the gate each batch's labelled inputs (the model's:
numeric features and categorical values, `InputLayout`) and its own
outputs on them, before it trains on them; the gate scores the same records
with the model served now and keeps the pair of errors
(`promotion.PairedWindow`). At each online export the learner's model is a
challenger: once `serve.promotion.window` pairs have been scored since the
serving model last changed, `promotion.decide` compares them. A promoted
challenger is saved into `Artifacts.serving` under its version and the
pointer `current.json` is replaced (after the model file is complete), so
the serving replicas swap to it between their transactions; the gate then
compares later challengers against it, on records scored afresh. Every
decision is kept for the learner's reports (the operator turns each into an
Event and `status.serving`).
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

import keras

from workload.artifacts import Artifacts, file_digest, write_json_atomic
from workload.model.export import write_keras_atomic
from workload.model.inputs import InputLayout, ModelInputs, head
from workload.model.litert import SAMPLE_RECORDS, export_litert
from workload.modes.prediction import Floats
from workload.modes.promotion import Decision, PairedWindow, decide
from workload.modes.serving_model import (
    POINTER,
    ServedModel,
    load_served,
    served_now,
    version_of,
)
from workload.spec import StreamingTrainingJobSpec
from workload.status import RECENT_DECISIONS

log = logging.getLogger(__name__)


class PromotionGate:
    """Compares the learner's model with the served one on the same records; promotes."""

    def __init__(self, spec: StreamingTrainingJobSpec, artifacts: Artifacts) -> None:
        assert spec.serve is not None
        self._promotion = spec.serve.promotion
        self._artifacts = artifacts
        self._layout = InputLayout.of(spec.data)
        self._window = PairedWindow(self._promotion.window)
        self._sample: ModelInputs | None = None
        version, path = served_now(artifacts)
        self.serving: ServedModel = load_served(path, version, self._layout)
        self.decided = 0
        """Decisions made by this job's learner so far (resumed from its checkpoint)."""
        self.promoted = 0
        """Of which promotions."""
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_DECISIONS)
        """The latest decisions, as reported (`PromotionReport` fields), oldest first."""

    def observe(self, inputs: ModelInputs, labels: Floats, challenger_outputs: Floats) -> None:
        """Score a batch (the model's inputs) with the served model and keep both models'
        errors on it."""
        if not len(labels):
            return
        self._sample = head(inputs, SAMPLE_RECORDS)  # the LiteRT export's test batch
        serving_outputs = self.serving.predict(inputs)
        task = self.serving.task  # the learner's model has the served one's task
        self._window.add(task.errors(challenger_outputs, labels),
                         task.errors(serving_outputs, labels))

    def consider(self, challenger: keras.Model) -> Decision | None:
        """Decide on `challenger` (the learner's model at an export); `None` while fewer than
        `window` records have been compared since the serving model last changed."""
        if not self._window.full:
            return None
        decision = decide(self._window, self.serving.task.classifies,
                          self._promotion.min_improvement)
        if decision.promoted:
            self._promote(challenger)
        self.decided += 1
        self.promoted += decision.promoted
        self.recent.append({
            "decisions": self.decided, "promoted": decision.promoted,
            "promotions": self.promoted,
            "version": self.serving.version, "metric": decision.metric,
            "challengerScore": decision.challenger_score,
            "servingScore": decision.serving_score, "records": decision.records,
            "why": decision.why[:500]})
        log.info("challenger %s: %s", "promoted" if decision.promoted else "rejected",
                 decision.why)
        return decision

    def _promote(self, challenger: keras.Model) -> None:
        """Save the challenger as the served model and point the replicas at it."""
        folder = self._artifacts.serving
        staged = folder / ".challenger.keras"
        write_keras_atomic(challenger, staged)
        version = version_of("online", staged)
        model = folder / f"model-{version}.keras"
        staged.replace(model)
        if self._sample is not None:
            outcome = export_litert(challenger, model, file_digest(model), self._sample)
            log.log(logging.INFO if outcome.ok else logging.WARNING,
                    "promoted model %s: %s", version, outcome.detail)
        write_json_atomic(folder / POINTER, {"version": version, "model": model.name})
        self.serving = load_served(model, version, self._layout)
        self._window.clear()

    def resume(self, decided: int, promoted: int) -> None:
        """Continue the counts of a learner restarted from its checkpoint."""
        self.decided, self.promoted = decided, promoted

    def counts(self) -> dict[str, Any]:
        """The counts and the latest decision, as the learner's state holds them."""
        return {"promotionDecisions": self.decided, "promotions": self.promoted,
                "recentDecisions": list(self.recent)}
