"""Serving pods' live posts summed into `status.serving`: records served, the version, since when.

Every serving pod posts its own figures (`mode: serve`): the predictions it
has committed since it started, and the model version it serves. The pod is
known by the name its verified token is bound to, never by what it says.
Per job, the operator keeps each pod's count; a count that falls (the
container restarted in its pod) is added to what that pod served before, so
the sum only grows. `recordsServed` is what the job's status said when this
operator first heard from the job's pods, plus what they served since.
`since` moves when a pod reports a version never reported before (a
promotion); a pod still on the old version for a moment (replicas swap
between their own transactions) does not move it back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workload.status import PromotionReport, ServingStatus


@dataclass
class PodCount:
    """One pod's count: its latest figure, plus what it had served before its last restart."""

    latest: int = 0
    before: int = 0

    def update(self, records: int) -> None:
        """A new figure from the pod (lower than the last: the container started again)."""
        if records < self.latest:
            self.before += self.latest
        self.latest = records

    @property
    def total(self) -> int:
        """What the pod has served, over its restarts."""
        return self.before + self.latest


@dataclass
class JobServing:
    """What a job's serving pods have posted to this operator."""

    uid: str
    base: int
    """`status.serving.recordsServed` when this operator first heard from the job's pods."""
    version: str | None = None
    since: str | None = None
    pods: dict[str, PodCount] = field(default_factory=dict)
    runtime: str | None = None
    seen: set[str] = field(default_factory=set)
    """Every version reported so far."""
    written_at: float | None = None
    """Monotonic time of the last status write."""
    last_decision: PromotionReport | None = None
    """The learner's latest decision (its counts are the learner's, kept in its checkpoint)."""

    def post(self, pod: str, records: int, version: str | None, now: str,
             runtime: str | None = None) -> bool:
        """Take a pod's post; whether the version changed (worth a write at once)."""
        self.pods.setdefault(pod, PodCount()).update(records)
        if runtime is not None and (version is None or version == self.version
                                    or version not in self.seen):
            self.runtime = runtime
        if self.version is not None:
            self.seen.add(self.version)
        changed = version is not None and version not in self.seen
        if changed:
            self.version, self.since = version, now
        return changed

    def decided(self, report: PromotionReport) -> bool:
        """Take one of the learner's decisions (they come oldest first); whether it is one not
        taken before. A learner counts on from its checkpoint, so a decision is new when its
        count is above the last one taken."""
        if self.last_decision is not None and report.decisions <= self.last_decision.decisions:
            return False
        self.last_decision = report
        return True

    def status(self, current: ServingStatus | None) -> ServingStatus:
        """`status.serving` with these figures (the Deployment's counts kept)."""
        return (current or ServingStatus()).model_copy(update={
            "records_served": self.base + sum(count.total for count in self.pods.values()),
            "version": self.version, "since": self.since, "runtime": self.runtime,
            "last_decision": self.last_decision,
            **({"promotions": self.last_decision.promotions,
                "rejections": self.last_decision.decisions - self.last_decision.promotions}
               if self.last_decision is not None else {})})
