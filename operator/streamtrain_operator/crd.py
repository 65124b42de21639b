"""Generate the `StreamingTrainingJob` CRD from the spec and status models.

`python -m streamtrain_operator.crd` writes `crds/streamtrain.dev_streamingtrainingjobs.yaml`;
`--check` exits non-zero when that file is stale. The pydantic JSON schema is
turned into a Kubernetes structural schema: `$defs` inlined, titles dropped,
`Optional[X] = None` made not-required, `Optional[X]` with another default made
`nullable`, `str | int` quantities marked
`x-kubernetes-int-or-string`, descriptions kept (on one line each) so
`kubectl explain` documents every field, each spec class's `RULES` written
as CEL rules for what one field cannot check alone, and a rule in a field's
type (a topic name, the bootstrap list, the output path) as a CEL rule on
that field.

Which fields may change while a job runs: `runPolicy` (suspend acts at once;
the other fields apply to child Jobs created afterwards), `trainer` /
`evaluator` (apply to child Jobs created afterwards) and `kafka.userRef`
(credentials rotate). Every other section is immutable: it can be neither
changed nor added nor removed (a transition rule on the spec compares
presence and value), because a job that changed its data or model mid-run
would report figures nobody asked for.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic.json_schema import GenerateJsonSchema, NoDefault
from pydantic_core import core_schema

from workload.contract import API_GROUP
from workload.spec import (
    API_VERSION,
    KIND,
    MUTABLE_FIELDS,
    MUTABLE_SUBFIELDS,
    PLURAL,
    SHORT_NAME,
    SINGULAR,
    StreamingTrainingJobSpec,
)
from workload.spec_base import SpecModel
from workload.status import StreamingTrainingJobStatus

CRD_FILE = f"{API_GROUP}_{PLURAL}.yaml"
"""File name under `crds/`, as controller-gen names CRD files."""

DEFAULT_OUTPUT = Path(__file__).resolve().parents[2] / "crds" / CRD_FILE

Schema = dict[str, Any]



def _spec_classes(base: type[SpecModel] = SpecModel) -> dict[str, type[SpecModel]]:
    """Every spec class by name (the names the JSON schema's `$defs` use)."""
    found: dict[str, type[SpecModel]] = {}
    for cls in base.__subclasses__():
        found[cls.__name__] = cls
        found.update(_spec_classes(cls))
    return found


def _aliases(model: type[SpecModel], leave_out: frozenset[str]) -> list[str]:
    """The wire names of `model`'s fields, except those in `leave_out` (Python names)."""
    return [info.serialization_alias or name for name, info in model.model_fields.items()
            if name not in leave_out]


def _unchanged(path: str) -> str:
    """CEL: the field at `path` (under `self`/`oldSelf`) is neither added, removed nor changed.

    `self.x == oldSelf.x` alone is not evaluated when `x` appears or disappears.
    """
    parent, _, name = path.rpartition(".")
    prefix = f".{parent}" if parent else ""
    return (f"has(self{prefix}.{name}) == has(oldSelf{prefix}.{name}) && "
            f"(!has(self{prefix}.{name}) || self.{path} == oldSelf.{path})")


def immutability_rules() -> list[Schema]:
    """Transition rules on the spec: each work-defining section stays as it was created."""
    rules: list[Schema] = []
    fields = StreamingTrainingJobSpec.model_fields
    partly = {fields[field].serialization_alias or field: section
              for field, section in MUTABLE_SUBFIELDS.items()}
    for name in _aliases(StreamingTrainingJobSpec, MUTABLE_FIELDS):
        if name in partly:
            model, free = partly[name]
            kept = _aliases(model, free)
            rule = " && ".join(_unchanged(f"{name}.{field}") for field in kept)
            if name != "kafka":  # kafka is required; an optional section stays present or absent
                rule = f"has(self.{name}) == has(oldSelf.{name}) && (!has(self.{name}) || {rule})"
            mutable = _aliases(model, frozenset(model.model_fields) - free)
            what = f"spec.{name} is immutable except {', '.join(mutable)}"
        else:
            rule = _unchanged(name)
            what = f"spec.{name} is immutable"
        rules.append({"rule": rule, "fieldPath": f".{name}",
                      "message": f"{what}: it can be neither changed, added nor removed once "
                                 "the job exists; create a new job instead"})
    return rules


PRINTER_COLUMNS: list[Schema] = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Reason", "type": "string", "jsonPath": ".status.reason",
     "description": "Why the job failed, or what it waits for."},
    {"name": "Progress", "type": "number", "jsonPath": ".status.progress.percent",
     "description": "Percent of the running phase done (as its pods last reported)."},
    {"name": "ETA", "type": "integer", "jsonPath": ".status.progress.etaSeconds",
     "description": "Seconds the running phase has left at its recent throughput."},
    {"name": "Metric", "type": "string", "jsonPath": ".status.metrics.evalMetric",
     "description": "The task's headline metric: accuracy (binary, multiclass) or rmse "
                    "(regression)."},
    {"name": "Value", "type": "number", "jsonPath": ".status.metrics.evalValue",
     "description": "The headline metric on the evaluation topic: accuracy 0-1, or RMSE in the "
                    "label's units."},
    {"name": "AUC", "type": "number", "jsonPath": ".status.metrics.evalAuc",
     "description": "ROC AUC on the evaluation topic (0-1)."},
    {"name": "Records", "type": "integer", "jsonPath": ".status.metrics.recordsEvaluated",
     "description": "Records scored, each exactly once."},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


class _FactoryDefaults(GenerateJsonSchema):
    """JSON schema generation that also reports defaults made by `default_factory`."""

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            return factory()  # type: ignore[call-arg]
        return schema.get("default", NoDefault)


def _is_null(schema: Schema) -> bool:
    return schema.get("type") == "null"


def _strip_none(value: Any) -> Any:
    """A default without `None` members (an absent field is how Kubernetes says none)."""
    if isinstance(value, dict):
        return {key: _strip_none(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_strip_none(item) for item in value]
    return value


class _Converter:
    """Turns one pydantic JSON schema into a structural OpenAPI v3 schema."""

    def __init__(self, definitions: dict[str, Schema], with_defaults: bool) -> None:
        self.definitions = definitions
        self.with_defaults = with_defaults

    def convert(self, schema: Schema, model: str | None = None) -> Schema:
        """The structural form of `schema`; `model` names the class it describes."""
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            merged = {**self.definitions[name], **{k: v for k, v in schema.items() if k != "$ref"}}
            return self.convert(merged, name)
        out: Schema = {}
        if "description" in schema:
            out["description"] = " ".join(schema["description"].split())
        variants = schema.get("anyOf")
        if variants is not None:
            return self._union(schema, variants, out)
        if "const" in schema:
            out["type"] = "string" if isinstance(schema["const"], str) else "integer"
            out["enum"] = [schema["const"]]
        for key in ("type", "enum", "pattern", "minLength", "maxLength", "minimum", "maximum",
                    "exclusiveMinimum", "exclusiveMaximum", "minItems", "maxItems", "maxProperties",
                    "format", "x-kubernetes-list-type", "x-kubernetes-validations"):
            if key in schema:
                out[key] = schema[key]
        self._numeric_bounds(out)
        if schema.get("type") == "object":
            self._object(schema, out, model)
        if "items" in schema:
            out["items"] = self.convert(schema["items"])
        if self.with_defaults and "default" in schema and schema["default"] is not None:
            # Full defaults, not `{}`: the API server checks CEL rules on a default as written.
            out["default"] = _strip_none(schema["default"])
        return out

    def _union(self, schema: Schema, variants: list[Schema], out: Schema) -> Schema:
        """`X | None` and `str | int`, the two unions the models use."""
        concrete = [variant for variant in variants if not _is_null(variant)]
        types = {variant.get("type") for variant in concrete}
        if types == {"string", "integer"}:
            out["x-kubernetes-int-or-string"] = True
            return out
        if len(concrete) != 1:
            raise ValueError(f"unsupported union in the spec model: {schema}")
        inner = {**concrete[0], **{k: v for k, v in schema.items() if k != "anyOf"}}
        converted = self.convert(inner)
        if schema.get("default", None) is not None or "default" not in schema:
            # A non-None default (or a factory): null is how a user turns the field off.
            converted["nullable"] = True
        return converted

    @staticmethod
    def _numeric_bounds(out: Schema) -> None:
        """Draft 2020-12 numeric exclusive bounds become OpenAPI v3's boolean form."""
        for bound, flag in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if bound in out and not isinstance(out[bound], bool):
                out[flag] = out.pop(bound)
                out[bound] = True

    def _object(self, schema: Schema, out: Schema, model: str | None) -> None:
        properties = schema.get("properties")
        if properties is not None:
            out["properties"] = {}
            for name, child in properties.items():
                out["properties"][name] = self.convert(child)
            if schema.get("required"):
                out["required"] = list(schema["required"])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            out["additionalProperties"] = self.convert(extra)
        rules = _spec_classes()[model].RULES if model in _spec_classes() else ()
        if any(rule.cel is not None for rule in rules):
            out["x-kubernetes-validations"] = [rule.validation() for rule in rules if rule.cel]
        unchecked = [rule.message for rule in rules if rule.cel is None]
        if unchecked:
            out["description"] = (out.get("description", "") + " Checked by the operator, not "
                                  "at apply: " + "; ".join(unchecked) + ".")


def _structural(model: type[Any], with_defaults: bool) -> Schema:
    raw = model.model_json_schema(by_alias=True, schema_generator=_FactoryDefaults)
    converter = _Converter(raw.pop("$defs", {}), with_defaults)
    return converter.convert(raw, model.__name__)


def status_schema() -> Schema:
    """The status schema; conditions form a map keyed by `type`."""
    schema = _structural(StreamingTrainingJobStatus, with_defaults=False)
    conditions = schema["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    return schema


def spec_edits() -> str:
    """What the spec's description says about edits while the job runs."""
    fixed = _aliases(StreamingTrainingJobSpec, MUTABLE_FIELDS)
    return (f" Edits while the job runs: {', '.join(fixed)} are immutable (kafka except userRef;"
            " serve except its pod settings, which scale or roll its pods at once)"
            " and can be neither added nor removed (create a new job instead);"
            " runPolicy.suspend acts at once; the other runPolicy fields, trainer, evaluator and"
            " kafka.userRef apply to phases that have not started yet.")


def spec_schema() -> Schema:
    """The spec schema, with defaults, CEL rules and immutability; its description says what
    may change."""
    schema = _structural(StreamingTrainingJobSpec, with_defaults=True)
    schema["description"] = schema.get("description", "") + spec_edits()
    schema.setdefault("x-kubernetes-validations", []).extend(immutability_rules())
    return schema


def crd_document() -> Schema:
    """The CustomResourceDefinition as a dict."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{API_GROUP}",
                     "labels": {"app.kubernetes.io/name": "streamtrain-operator",
                                "app.kubernetes.io/part-of": "streamtrain"}},
        "spec": {
            "group": API_GROUP,
            "scope": "Namespaced",
            "names": {"kind": KIND, "plural": PLURAL, "singular": SINGULAR,
                      "shortNames": [SHORT_NAME], "listKind": f"{KIND}List",
                      "categories": ["streamtrain"]},
            "versions": [{
                "name": API_VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": PRINTER_COLUMNS,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": StreamingTrainingJobSpec.__doc__,
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": spec_schema(),
                        "status": status_schema(),
                    },
                    "required": ["spec"],
                }},
            }],
        },
    }


HEADER = "# Generated by `python -m streamtrain_operator.crd` from workload/spec.py; do not edit.\n"


def render() -> str:
    """The CRD file's text."""
    return HEADER + yaml.safe_dump(crd_document(), sort_keys=False, width=100)


def main(argv: list[str] | None = None) -> int:
    """Write the CRD file, or with `--check` report whether it is stale."""
    parser = argparse.ArgumentParser(prog="python -m streamtrain_operator.crd")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--check", action="store_true", help="fail when the file is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is stale: run python -m streamtrain_operator.crd",
                  file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
