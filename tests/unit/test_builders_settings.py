"""Operator settings from STREAMTRAIN_OPERATOR_* variables, validated once."""

from __future__ import annotations

import pytest
from streamtrain_operator.settings import OperatorSettings, SettingsError


def test_defaults_set_watch_timeouts_and_run_standalone_cluster_wide() -> None:
    settings = OperatorSettings.from_env({})
    kopf_settings = settings.to_kopf()
    assert kopf_settings.watching.server_timeout == 300
    assert kopf_settings.watching.client_timeout == 330
    assert kopf_settings.peering.standalone is True
    assert settings.namespaces == () and kopf_settings.scanning.disabled is False
    assert settings.liveness_endpoint == "http://0.0.0.0:8080/healthz"


def test_namespaces_and_peering_are_read_from_the_environment() -> None:
    settings = OperatorSettings.from_env({
        "STREAMTRAIN_OPERATOR_NAMESPACES": "ml, ml-staging",
        "STREAMTRAIN_OPERATOR_PEERING": "streamtrain",
        "STREAMTRAIN_OPERATOR_LIVENESS_PORT": "0"})
    kopf_settings = settings.to_kopf()
    assert settings.namespaces == ("ml", "ml-staging")
    assert kopf_settings.peering.standalone is False and kopf_settings.peering.name == "streamtrain"
    assert kopf_settings.scanning.disabled is True
    selectors = {selector.any_name: value
                 for selector, value in kopf_settings.watching.label_selectors.items()}
    assert selectors == {"jobs": "streamtrain.dev/job-uid", "deployments": "streamtrain.dev/job-uid",
                         "replicasets": "streamtrain.dev/job-uid", "pods": "streamtrain.dev/job-uid"}
    assert settings.liveness_endpoint is None


@pytest.mark.parametrize(("env", "named"), [
    ({"STREAMTRAIN_OPERATOR_RESYNC_INTERVAL_S": "soon"}, "RESYNC_INTERVAL_S"),
    ({"STREAMTRAIN_OPERATOR_WORKERS": "0"}, "WORKERS"),
    ({"STREAMTRAIN_OPERATOR_WATCH_CLIENT_TIMEOUT_S": "10"}, "WATCH_CLIENT_TIMEOUT_S"),
    ({"STREAMTRAIN_OPERATOR_METRICS_PORT": "70000"}, "METRICS_PORT"),
    ({"STREAMTRAIN_OPERATOR_NAMESPACE": "typo"}, "STREAMTRAIN_OPERATOR_NAMESPACE"),
])
def test_bad_settings_are_rejected_naming_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        OperatorSettings.from_env(env)
