"""Generate the `StreamingTrainingJob` CRD from the spec and status models.

`python -m streamtrain_operator.crd` writes `crds/streamtrain.dev_streamingtrainingjobs.yaml`;
`--check` exits non-zero when that file is stale. The pydantic JSON schema is
turned into a Kubernetes structural schema: `$defs` inlined, titles dropped,
`Optional[X] = None` made not-required, `Optional[X]` with another default made
`nullable`, `str | int` quantities marked
`x-kubernetes-int-or-string`, descriptions kept so `kubectl explain` documents
every field, and CEL rules added for what one field cannot check alone.

Which fields may change while a job runs: `runPolicy` (suspend acts at once;
the other fields apply to child Jobs created afterwards) and `trainer` /
`evaluator` (apply to child Jobs created afterwards). `kafka`, `data`,
`train`, `evaluate`, `online` and `model` are immutable once set: a job that
changed its data or model mid-run would report figures nobody asked for.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic.json_schema import GenerateJsonSchema, NoDefault
from pydantic_core import core_schema

from workload.spec import (
    API_GROUP,
    API_VERSION,
    KIND,
    PLURAL,
    SHORT_NAME,
    SINGULAR,
    StreamingTrainingJobSpec,
)
from workload.status import StreamingTrainingJobStatus

CRD_FILE = f"{API_GROUP}_{PLURAL}.yaml"
"""File name under `crds/`, as controller-gen names CRD files."""

DEFAULT_OUTPUT = Path(__file__).resolve().parents[2] / "crds" / CRD_FILE

Schema = dict[str, Any]

IMMUTABLE = "self == oldSelf"

CEL_RULES: dict[str, list[Schema]] = {
    "StreamingTrainingJobSpec": [
        {
            "rule": "has(self.train) || has(self.evaluate) || has(self.online)",
            "message": "set at least one of train, evaluate and online",
        },
        {
            "rule": "!has(self.train) || !has(self.model) || !has(self.model.source)",
            "message": "model.source is for jobs that do not train: a job with train uses the "
                       "model it trains",
        },
    ],
    "ModelSourceSpec": [
        {
            "rule": "has(self.job) != has(self.path)",
            "message": "set exactly one of job and path",
        },
        {
            "rule": "has(self.path) == has(self.volumeClaim)",
            "message": "path and volumeClaim go together",
        },
    ],
    "KafkaSpec": [
        {
            "rule": "has(self.clusterRef) != has(self.bootstrapServers)",
            "message": "set exactly one of clusterRef and bootstrapServers",
        },
    ],
    "LayerSpec": [
        {
            "rule": "has(self.dense) != has(self.dropout)",
            "message": "a layer sets exactly one of dense and dropout",
        },
        {
            "rule": "!has(self.dropout) || !has(self.activation)",
            "message": "activation belongs to dense layers, not dropout",
        },
    ],
    "DataSpec": [
        {
            "rule": "self.label == 'key' || (has(self.columns) && self.label in self.columns)",
            "message": "label must be 'key' or one of columns",
        },
        {
            "rule": "self.format != 'json' || has(self.columns)",
            "message": "format json needs columns (the JSON fields to read)",
        },
    ],
}
"""Cross-field rules by model name, mirroring the models' validators."""

IMMUTABLE_FIELDS = {"kafka", "data", "train", "evaluate", "online", "model"}
"""Spec fields that may not change once the job exists (see the module docstring)."""

PRINTER_COLUMNS: list[Schema] = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Accuracy", "type": "number", "jsonPath": ".status.metrics.evalAccuracy",
     "description": "Accuracy on the evaluation topic (0-1)."},
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
            out["description"] = schema["description"]
        variants = schema.get("anyOf")
        if variants is not None:
            return self._union(schema, variants, out)
        if "const" in schema:
            out["type"] = "string" if isinstance(schema["const"], str) else "integer"
            out["enum"] = [schema["const"]]
        for key in ("type", "enum", "pattern", "minLength", "maxLength", "minimum", "maximum",
                    "exclusiveMinimum", "exclusiveMaximum", "minItems", "maxItems", "format"):
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
                converted = self.convert(child)
                if model == "StreamingTrainingJobSpec" and name in IMMUTABLE_FIELDS:
                    converted.setdefault("x-kubernetes-validations", []).append(
                        {"rule": IMMUTABLE, "message": f"spec.{name} is immutable; "
                         "create a new job to change it"})
                out["properties"][name] = converted
            if schema.get("required"):
                out["required"] = list(schema["required"])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            out["additionalProperties"] = self.convert(extra)
        if model in CEL_RULES:
            out["x-kubernetes-validations"] = [dict(rule) for rule in CEL_RULES[model]]


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


SPEC_EDITS = (
    " Edits while the job runs: kafka, data, train, evaluate, online and model are immutable"
    " (create a new job instead); runPolicy.suspend acts at once; the other runPolicy fields"
    " and trainer/evaluator apply to phases that have not started yet."
    " Set train, evaluate or online to null to skip that phase (kubectl: apply --server-side)."
)


def spec_schema() -> Schema:
    """The spec schema, with defaults and CEL rules; its description says what may change."""
    schema = _structural(StreamingTrainingJobSpec, with_defaults=True)
    schema["description"] = schema.get("description", "") + SPEC_EDITS
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
