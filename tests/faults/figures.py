"""A measured figure of a fault scenario and its goal: what the tests assert, what the report prints."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Figure:
    """One measurement: which scenario, what was measured, the goal, the value, whether it is met."""

    scenario: str
    name: str
    goal: str
    measured: str
    met: bool

    def to_json(self) -> dict[str, Any]:
        """The figure as a JSON object."""
        return asdict(self)


def figure(scenario: str, name: str, goal: str, measured: object, met: bool) -> Figure:
    """A figure whose measured value is shown as text (floats with 4 significant digits)."""
    text = f"{measured:.4g}" if isinstance(measured, float) else str(measured)
    return Figure(scenario, name, goal, text, bool(met))


def unmet(figures: list[Figure]) -> list[Figure]:
    """The figures that missed their goal."""
    return [item for item in figures if not item.met]


def describe(figures: list[Figure]) -> str:
    """All figures, one a line (for assertion messages)."""
    return "\n".join(f"{'ok ' if f.met else 'MISS'} {f.scenario}: {f.name} = {f.measured} "
                     f"(goal {f.goal})" for f in figures)
