"""The contract between operator and pods: one mode table, and both sides reading the same names."""

from __future__ import annotations

from typing import get_args

from streamtrain_operator.builders import KafkaAccess, build_job_manifest

from workload.contract import JOB_NAME_ENV, MODE_TABLE, MODES, Mode
from workload.kafka.connection import connection_for
from workload.runner import spec_from_environment
from workload.spec import StreamingTrainingJobSpec, parse_spec
from workload.status import Condition, StreamingTrainingJobStatus


def test_the_mode_table_covers_the_mode_type_in_run_order() -> None:
    assert MODES == get_args(Mode) == ("train", "evaluate", "online")


def test_each_row_names_a_spec_section_a_pod_template_a_status_field_and_a_condition() -> None:
    spec_fields = StreamingTrainingJobSpec.model_fields
    status_fields = StreamingTrainingJobStatus.model_fields
    conditions = get_args(Condition.model_fields["type"].annotation)
    for row in MODE_TABLE:
        assert row.mode in spec_fields and row.template in spec_fields
        assert row.status_field in status_fields
        assert row.condition in conditions


def test_a_pod_reads_back_what_the_operator_hands_it() -> None:
    spec = parse_spec({"kafka": {"clusterRef": {"name": "c"}}, "online": {"topic": "t"}})
    manifest = build_job_manifest("susy", "ns", "uid", "online", spec, KafkaAccess("k:9093"))
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item["value"] for item in container["env"]}
    name, parsed = spec_from_environment(env)
    assert (name, parsed) == ("susy", spec) and env[JOB_NAME_ENV] == "susy"
    assert connection_for(parsed.kafka, env).bootstrap_servers == "k:9093"
