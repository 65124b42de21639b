"""The base of every spec class, and its rules declared once for pydantic and the CRD.

A `Rule` holds one rule in both forms next to each other: the check pydantic
runs on the model and the CEL expression the API server runs on the
resource, with one message. The spec classes list their rules across fields
in `RULES`; `SpecModel` checks them on every validation and the CRD generator
writes them into `x-kubernetes-validations`, so a spec the API server accepts
is one the operator accepts (a parity test holds the two forms to it). A rule
CEL cannot express has `cel=None` and is named in the CRD description.

A rule on one field's value is written into the field's type instead
(`Annotated[str, Field(...), rule]`): pydantic checks it after the field's
own constraints and the generated schema carries it on that field, so the
API server names the field (and, from Kubernetes 1.35, the value) and says
the rule's message, not a regular expression.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from pydantic import (
    AliasGenerator,
    BaseModel,
    ConfigDict,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

IN_CLUSTER = "in_cluster"
"""Validation context key: true where each phase runs in a pod of its own (the operator, the
CRD), false for a local run, where every phase shares one process and one folder."""


@dataclass(frozen=True)
class Rule:
    """One rule across fields: the pydantic check, the same rule in CEL, and its message."""

    check: Callable[[Any], bool]
    """True when the model (an instance of the class that lists the rule) obeys it."""
    cel: str | None
    """The same rule over the resource (`self` is the object the class describes); `None` when
    CEL cannot express it."""
    message: str
    """One sentence that says what is wrong and how to fix it (no braces)."""
    field: str | None = None
    """The field the message is about, relative to the class (camelCase, dotted), if one."""
    in_cluster_only: bool = False
    """The rule holds only where each phase runs in a pod of its own."""

    def applies(self, context: object) -> bool:
        """Whether the rule is checked under this validation context."""
        return not self.in_cluster_only or bool(
            isinstance(context, dict) and context.get(IN_CLUSTER))

    def validation(self) -> dict[str, str]:
        """The rule as an entry of `x-kubernetes-validations`."""
        if self.cel is None:
            raise ValueError(f"rule {self.message!r} has no CEL form")
        entry = {"rule": self.cel, "message": self.message}
        if self.field is not None:
            entry["fieldPath"] = "." + self.field
        return entry

    # A rule in a field's type (`Annotated[str, Field(...), rule]`): pydantic's two hooks.

    def __get_pydantic_core_schema__(self, source: Any,
                                     handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._check_value, handler(source))

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema,
                                     handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema.setdefault("x-kubernetes-validations", []).append(self.validation())
        return json_schema

    def _check_value(self, value: Any) -> Any:
        if not self.check(value):
            raise PydanticCustomError("rule", self.message)
        return value


class SpecModel(BaseModel):
    """Base of every spec class: camelCase on the wire, unknown fields rejected, rules checked."""

    model_config = ConfigDict(
        alias_generator=AliasGenerator(validation_alias=to_camel, serialization_alias=to_camel),
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
    )

    RULES: ClassVar[tuple[Rule, ...]] = ()
    """Rules across this class's fields."""

    @model_validator(mode="after")
    def _obey_rules(self, info: ValidationInfo) -> Self:
        for rule in self.RULES:
            if rule.applies(info.context) and not rule.check(self):
                raise PydanticCustomError("rule", rule.message,
                                          {"field": rule.field} if rule.field else None)
        return self


def format_validation_error(error: ValidationError, prefix: str = "spec") -> str:
    """One line per problem: `spec.train.epochs: Input should be greater than or equal to 1`."""
    lines = []
    for problem in error.errors():
        field = (problem.get("ctx") or {}).get("field")
        parts = [prefix, *problem["loc"], *([field] if isinstance(field, str) else [])]
        path = ".".join(str(part) for part in parts if part != "")
        message = problem["msg"].removeprefix("Value error, ")
        lines.append(f"{path}: {message}")
    return "; ".join(lines)
