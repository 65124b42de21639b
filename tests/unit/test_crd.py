"""The generated CRD: current with the spec model, structural, and documenting every field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from streamtrain_operator import crd

from workload.spec import BOOTSTRAP_RULE, OUTPUT_PATH_RULE, TOPIC_RULE, KafkaSpec, LayerSpec


def _walk(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, schema)]
    for name, child in (schema.get("properties") or {}).items():
        found += _walk(child, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        found += _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        found += _walk(schema["additionalProperties"], f"{path}{{}}")
    return found


def test_committed_crd_matches_the_spec_model(repo_root: Path) -> None:
    committed = (repo_root / "crds" / crd.CRD_FILE).read_text()
    assert committed == crd.render(), "crds/ is stale: run python -m streamtrain_operator.crd"


def test_check_mode_fails_on_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / crd.CRD_FILE
    stale.write_text("stale")
    assert crd.main(["--output", str(stale), "--check"]) == 1
    assert crd.main(["--output", str(stale)]) == 0
    assert crd.main(["--output", str(stale), "--check"]) == 0


def test_every_spec_field_has_a_description() -> None:
    undocumented = [path for path, schema in _walk(crd.spec_schema())
                    if path and "description" not in schema and not path.endswith(("[]", "{}"))]
    assert undocumented == []


def test_schema_is_structural_without_refs_titles_or_anyof() -> None:
    text = yaml.safe_dump(crd.crd_document())
    for forbidden in ("$ref", "$defs", "title:", "anyOf", "additionalProperties: false"):
        assert forbidden not in text


def test_quantities_are_int_or_string() -> None:
    resources = crd.spec_schema()["properties"]["trainer"]["properties"]["resources"]
    assert resources["properties"]["limits"]["additionalProperties"] == {
        "description": "A Kubernetes quantity, e.g. `500m`, `2Gi`, `4`.",
        "x-kubernetes-int-or-string": True}


def test_phases_are_present_only_when_written_and_their_fields_have_defaults() -> None:
    spec = crd.spec_schema()["properties"]
    for phase in ("train", "evaluate", "online"):
        assert "nullable" not in spec[phase] and "default" not in spec[phase]
    assert spec["train"]["properties"]["epochs"]["default"] == 10
    kafka = spec["kafka"]
    assert "clusterRef" not in kafka.get("required", [])
    assert crd.spec_schema()["required"] == ["kafka"]


def test_each_spec_class_rule_is_a_cel_rule_of_its_schema() -> None:
    spec = crd.spec_schema()
    kafka = spec["properties"]["kafka"]["x-kubernetes-validations"]
    assert [rule.validation() for rule in KafkaSpec.RULES] == kafka
    layer = spec["properties"]["model"]["properties"]["layers"]["items"]
    assert [rule.validation() for rule in LayerSpec.RULES] == layer["x-kubernetes-validations"]
    assert "x-kubernetes-validations" not in spec["properties"]["runPolicy"]


def test_a_rule_in_a_fields_type_is_a_cel_rule_on_that_field_with_a_human_message() -> None:
    spec = crd.spec_schema()["properties"]
    on_field = {
        "train.topic": (spec["train"]["properties"]["topic"], TOPIC_RULE),
        "evaluate.topic": (spec["evaluate"]["properties"]["topic"], TOPIC_RULE),
        "online.topic": (spec["online"]["properties"]["topic"], TOPIC_RULE),
        "data.deadLetterTopic": (spec["data"]["properties"]["deadLetterTopic"], TOPIC_RULE),
        "kafka.bootstrapServers": (spec["kafka"]["properties"]["bootstrapServers"],
                                   BOOTSTRAP_RULE),
        "model.output.path": (spec["model"]["properties"]["output"]["properties"]["path"],
                              OUTPUT_PATH_RULE),
    }
    for field, (schema, rule) in on_field.items():
        assert schema["x-kubernetes-validations"] == [rule.validation()], field
        assert "pattern" not in schema, field  # no raw regular expression as the message
        assert schema["maxLength"] <= 4096, field  # CEL's cost is bounded by the length
    assert TOPIC_RULE.validation() == {
        "rule": r"self.matches(r'^(\.*[a-zA-Z0-9_-][a-zA-Z0-9._-]*|\.{3,})$')",
        "message": "must be a Kafka topic name: letters, digits, '.', '_' and '-' only, and not "
                   "'.' or '..' alone"}


def test_work_defining_sections_are_immutable_at_the_spec_level() -> None:
    rules = {rule["fieldPath"]: rule for rule in crd.spec_schema()["x-kubernetes-validations"]
             if "oldSelf" in rule["rule"]}
    assert sorted(rules) == [".data", ".evaluate", ".kafka", ".model", ".online", ".serve",
                             ".train"]
    assert rules[".train"]["rule"] == ("has(self.train) == has(oldSelf.train) && "
                                       "(!has(self.train) || self.train == oldSelf.train)")
    assert "userRef" not in rules[".kafka"]["rule"] and "kafka.config" in rules[".kafka"]["rule"]
    # Serving pods scale and roll while the job runs; what they serve stays.
    serve = rules[".serve"]["rule"]
    assert serve.startswith("has(self.serve) == has(oldSelf.serve) && (!has(self.serve) || ")
    assert "serve.inputTopic" in serve and "serve.batchSize" in serve
    assert "serve.replicas" not in serve and "serve.image" not in serve


def test_descriptions_are_one_line_each() -> None:
    assert all("\n" not in schema.get("description", "") for _, schema in _walk(crd.spec_schema()))


def test_crd_has_status_subresource_printer_columns_and_short_name() -> None:
    version = crd.crd_document()["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = {column["name"]: column["jsonPath"] for column in version["additionalPrinterColumns"]}
    assert columns["Metric"] == ".status.metrics.evalMetric"
    assert columns["Value"] == ".status.metrics.evalValue"
    assert list(columns) == ["Phase", "Reason", "Progress", "ETA", "Metric", "Value", "AUC",
                             "Records", "Age"]
    assert crd.crd_document()["spec"]["names"]["shortNames"] == ["stj"]
    conditions = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"][
        "conditions"]
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
