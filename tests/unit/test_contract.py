"""The contract between operator and pods: one mode table, and both sides reading the same names."""

from __future__ import annotations

from typing import get_args

from streamtrain_operator.builders import KafkaAccess, build_job_manifest

from workload.contract import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    JOB_NAME_ENV,
    KAFKA_FAILURES,
    MODE_TABLE,
    MODES,
    NOT_RETRIED_EXIT_CODES,
    PEER_LOST_EXIT,
    PERMANENT,
    PERMANENT_FAILURES,
    FailureReason,
    Mode,
    exit_code_for,
)
from workload.kafka.connection import connection_for
from workload.runner import spec_from_environment
from workload.spec import StreamingTrainingJobSpec, parse_spec
from workload.status import Condition, PodReport, StreamingTrainingJobStatus


def test_the_mode_table_covers_the_mode_type_in_run_order() -> None:
    assert MODES == get_args(Mode) == ("train", "evaluate", "online", "serve")


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


def test_every_permanent_reason_has_one_exit_code_apart_from_success_retries_and_signals() -> None:
    assert tuple(PERMANENT) == get_args(FailureReason)
    codes = [row.exit_code for row in PERMANENT_FAILURES]
    assert len(set(codes)) == len(codes) and tuple(sorted(codes)) == NOT_RETRIED_EXIT_CODES
    for code in codes:
        assert code not in (EXIT_OK, EXIT_FAILED, PEER_LOST_EXIT) and 1 < code < 120
    assert KAFKA_FAILURES == ("KafkaUnreachable", "KafkaLoginRefused", "KafkaClientUnsupported")


def test_a_pod_exits_with_its_reasons_code_and_a_failure_without_one_is_retried() -> None:
    assert exit_code_for(True, None) == EXIT_OK
    assert exit_code_for(False, None) == EXIT_FAILED
    assert exit_code_for(False, "TopicNotFound") == PERMANENT["TopicNotFound"].exit_code == 6
    assert exit_code_for(False, "TooManyBadRecords") == 7
    assert exit_code_for(False, "InvalidSpec") == EXIT_BAD_INPUT == 2


def test_a_report_keeps_known_reasons_and_reads_an_unknown_one_as_none() -> None:
    known = PodReport(mode="train", ok=False, message="m", reason="TopicNotFound")
    assert PodReport.from_message(known.to_message()) == known
    forged = PodReport.from_message('{"mode": "train", "ok": false, "message": "m", '
                                    '"reason": "Not a reason!"}')
    assert forged is not None and forged.reason is None and forged.message == "m"
    odd = PodReport.from_message('{"mode": "train", "ok": false, "message": "m", "reason": [1]}')
    assert odd is not None and odd.reason is None and odd.message == "m"
