"""The operator chart's switches, checked on `helm template` output (helm-unittest style)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from localparts import helm
from localparts.errors import LocalPartError
from tests.unit.chart_render import Manifest, render

CRD_NAME = "streamingtrainingjobs.streamtrain.dev"
KEEP = "helm.sh/resource-policy"
ARGOCD_KEEP = "argocd.argoproj.io/sync-options"


def operator_container(deployment: Manifest) -> Manifest:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def operator_env(deployment: Manifest) -> dict[str, str]:
    """The operator's plain environment variables (its settings)."""
    return {item["name"]: item["value"] for item in operator_container(deployment)["env"]
            if "value" in item}


def rules_of(path: Path) -> list[Manifest]:
    """The rules of the first document of an RBAC file."""
    return list(next(yaml.safe_load_all(path.read_text()))["rules"])


def rule_resources(rules: list[Manifest]) -> set[str]:
    return {resource for rule in rules for resource in rule["resources"]}


# ---------------------------------------------------------------- values

def test_it_should_pass_helm_lint_strict() -> None:
    completed = helm.helm("lint", "--strict", helm.CHART_DIR)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "0 chart(s) failed" in completed.stdout


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"crd": {"enabled": False}}, "additional properties 'crd' not allowed"),
        ({"watch": {"clusterwide": False}}, "additional properties 'clusterwide' not allowed"),
        ({"image": {"tags": "1.0"}}, "additional properties 'tags' not allowed"),
        ({"securityContext": {"runAsNonroot": True}}, "additional properties 'runAsNonroot'"),
        ({"health": {"port": 80800}}, "port"),
        ({"watch": {"clusterWide": False}}, "namespaces"),
    ],
    ids=["top-level", "nested", "image", "security-context", "port",
         "namespaced-without-namespaces"],
)
def test_it_should_refuse_a_mistyped_or_unsafe_value(
    values: dict[str, Any], complaint: str,
) -> None:
    with pytest.raises(LocalPartError, match="values don't meet the specifications") as refused:
        render(values)
    assert complaint in str(refused.value)


def test_it_should_refuse_several_replicas_without_peering_and_say_why() -> None:
    with pytest.raises(LocalPartError) as refused:
        render({"replicaCount": 2})
    assert ("replicaCount must be 1 unless peering.enabled=true: two operators without peering "
            "would both act on every job") in str(refused.value)


def test_it_should_document_every_value_with_a_comment() -> None:
    """Each key has a comment right above it, or sits inside a map whose key has one."""
    lines = (helm.CHART_DIR / "values.yaml").read_text().splitlines()
    ancestors: list[tuple[int, bool]] = []  # (indent, commented) of the enclosing keys
    undocumented = []
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "-")) or ":" not in stripped:
            continue
        indent = len(line) - len(line.lstrip())
        while ancestors and ancestors[-1][0] >= indent:
            ancestors.pop()
        commented = index > 0 and lines[index - 1].strip().startswith("#")
        if not commented and not any(covered for _, covered in ancestors) \
                and not stripped.endswith(":"):
            undocumented.append(stripped)
        ancestors.append((indent, commented))
    assert undocumented == []


def schema_keys(schema: dict[str, Any], definitions: dict[str, Any], prefix: str = "") -> set[str]:
    """Dotted paths of every property the schema declares (through $refs)."""
    if "$ref" in schema:
        schema = definitions[schema["$ref"].rsplit("/", 1)[-1]]
    keys = set()
    for name, child in schema.get("properties", {}).items():
        keys.add(prefix + name)
        keys |= schema_keys(child, definitions, f"{prefix}{name}.")
    return keys


def value_keys(values: dict[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for name, child in values.items():
        keys.add(prefix + name)
        if isinstance(child, dict) and child and name not in {"requests", "limits"}:
            keys |= value_keys(child, f"{prefix}{name}.")
    return keys


def test_it_should_declare_every_value_in_the_schema() -> None:
    schema = yaml.safe_load((helm.CHART_DIR / "values.schema.json").read_text())
    values = yaml.safe_load((helm.CHART_DIR / "values.yaml").read_text())
    assert value_keys(values) - schema_keys(schema, schema["definitions"]) == set()


def test_it_should_close_every_schema_object_to_unknown_keys() -> None:
    schema = yaml.safe_load((helm.CHART_DIR / "values.schema.json").read_text())
    open_objects = []

    def visit(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if "properties" in node and node.get("additionalProperties") is not False:
                open_objects.append(path)
            for key, child in node.items():
                if key not in {"if", "then", "else"}:  # conditions, not object definitions
                    visit(child, f"{path}/{key}")
        elif isinstance(node, list):
            for index, child in enumerate(node):
                visit(child, f"{path}/{index}")

    visit(schema, "")
    # EnvVar items are Kubernetes objects checked by the API server; only `name` is required here.
    assert open_objects == ["/properties/operator/properties/extraEnv/items"]


# ---------------------------------------------------------------- CRDs

def test_it_should_keep_its_crd_copy_identical_to_the_generated_crds(repo_root: Path) -> None:
    sources = sorted((repo_root / "crds").glob("*.yaml"))
    copies = sorted(helm.CHART_CRDS_DIR.glob("*.yaml"))
    assert sources, "crds/ holds the generated CRDs"
    assert [path.name for path in copies] == [path.name for path in sources]
    for source, copy in zip(sources, copies, strict=True):
        assert copy.read_text() == source.read_text(), (
            f"{copy} differs from {source}: run python -m localparts.helm sync"
        )


def test_it_should_install_the_crd_as_generated_plus_labels_and_keep(repo_root: Path) -> None:
    generated = yaml.safe_load((repo_root / "crds" / "streamtrain.dev_streamingtrainingjobs.yaml")
                               .read_text())
    installed = render().one("CustomResourceDefinition", CRD_NAME)
    metadata = installed.pop("metadata")
    generated_metadata = generated.pop("metadata")
    assert installed == generated
    assert metadata["annotations"] == {KEEP: "keep", ARGOCD_KEEP: "Delete=false,Prune=false"}
    assert generated_metadata["labels"].items() <= metadata["labels"].items()
    assert metadata["labels"]["app.kubernetes.io/managed-by"] == "Helm"


def test_it_should_let_helm_delete_the_crd_when_keep_is_off() -> None:
    crd = render({"crds": {"keep": False}}).one("CustomResourceDefinition", CRD_NAME)
    assert crd["metadata"].get("annotations", {}) == {}


def test_it_should_leave_the_crds_out_when_disabled() -> None:
    assert "CustomResourceDefinition" not in render({"crds": {"enabled": False}}).kinds()


def test_it_should_install_the_peering_crds_only_with_peering() -> None:
    assert len(render().all("CustomResourceDefinition")) == 1
    names = {crd["metadata"]["name"] for crd in
             render({"peering": {"enabled": True}}).all("CustomResourceDefinition")}
    assert names == {CRD_NAME, "clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"}


# ---------------------------------------------------------------- RBAC

def test_it_should_bind_one_cluster_role_when_watching_every_namespace() -> None:
    rendered = render()
    assert rendered.all("Role") == [] and rendered.all("RoleBinding") == []
    role = rendered.one("ClusterRole", "streamtrain-operator")
    assert {"streamingtrainingjobs", "streamingtrainingjobs/status", "jobs", "pods"} <= \
        rule_resources(role["rules"])
    binding = rendered.one("ClusterRoleBinding", "streamtrain-operator")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "streamtrain-operator",
                                    "namespace": "streamtrain-system"}]
    assert "STREAMTRAIN_OPERATOR_NAMESPACES" not in operator_env(rendered.one("Deployment"))


def test_it_should_grant_roles_only_in_the_watched_namespaces() -> None:
    rendered = render({"watch": {"clusterWide": False, "namespaces": ["ml", "research"]}})
    roles = rendered.all("Role")
    assert sorted(role["metadata"]["namespace"] for role in roles) == ["ml", "research"]
    assert "streamingtrainingjobs" in rule_resources(roles[0]["rules"])
    bindings = rendered.all("RoleBinding")
    assert sorted(binding["metadata"]["namespace"] for binding in bindings) == ["ml", "research"]
    cluster_roles = rendered.all("ClusterRole")
    assert [role["metadata"]["name"] for role in cluster_roles] == [
        "streamtrain-operator-tokenreview"], "cluster-wide: only TokenReviews"
    assert cluster_roles[0]["rules"] == [{"apiGroups": ["authentication.k8s.io"],
                                          "resources": ["tokenreviews"], "verbs": ["create"]}]
    env = operator_env(rendered.one("Deployment"))
    assert env["STREAMTRAIN_OPERATOR_NAMESPACES"] == "ml,research"


def test_it_should_grant_exactly_the_rules_of_the_operators_own_rbac(repo_root: Path) -> None:
    rbac = repo_root / "operator" / "rbac"
    cluster_wide = {role["metadata"]["name"]: role["rules"]
                    for role in render().all("ClusterRole")}
    assert cluster_wide == {"streamtrain-operator": rules_of(rbac / "clusterrole.yaml"),
                            "streamtrain-operator-tokenreview": rules_of(
                                rbac / "tokenreview.yaml")}
    namespaced = render({"watch": {"clusterWide": False, "namespaces": ["ml"]}})
    assert namespaced.one("Role")["rules"] == rules_of(rbac / "role.yaml")


def test_it_should_never_grant_wildcards_or_secrets() -> None:
    for values in ({}, {"watch": {"clusterWide": False, "namespaces": ["ml"]}},
                   {"peering": {"enabled": True}}):
        rendered = render(values)
        for role in rendered.all("ClusterRole") + rendered.all("Role"):
            for rule in role["rules"]:
                assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
                assert "secrets" not in rule["resources"]


def test_it_should_create_no_rbac_when_told_not_to() -> None:
    kinds = set(render({"rbac": {"create": False}}).kinds())
    assert kinds.isdisjoint({"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"})


# ---------------------------------------------------------------- Deployment

def test_it_should_run_the_operator_under_the_restricted_pod_security_standard() -> None:
    deployment = render().one("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = operator_container(deployment)
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_it_should_probe_the_kopf_liveness_endpoint() -> None:
    container = operator_container(render().one("Deployment"))
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {"name": "health", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
    assert operator_env(render().one("Deployment"))["STREAMTRAIN_OPERATOR_LIVENESS_PORT"] == "8080"


def test_it_should_set_only_settings_the_operator_knows() -> None:
    from streamtrain_operator.settings import OperatorSettings

    deployment = render({"peering": {"enabled": True}, "replicaCount": 2,
                         "watch": {"clusterWide": False, "namespaces": ["ml"]}}).one("Deployment")
    settings = OperatorSettings.from_env(operator_env(deployment))
    assert settings.namespaces == ("ml",)
    assert settings.peering == "streamtrain"
    assert (settings.liveness_port, settings.metrics_port) == (8080, 9090)
    assert (settings.resync_interval_s, settings.workers) == (300.0, 16)


def test_it_should_run_a_single_operator_that_stops_before_its_successor() -> None:
    rendered = render()
    deployment = rendered.one("Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert "STREAMTRAIN_OPERATOR_PEERING" not in operator_env(deployment)
    assert rendered.all("ClusterKopfPeering") == []


def test_it_should_run_several_replicas_with_peering() -> None:
    rendered = render({"peering": {"enabled": True, "name": "ml-ops"}, "replicaCount": 3})
    deployment = rendered.one("Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert "strategy" not in deployment["spec"]
    assert operator_env(deployment)["STREAMTRAIN_OPERATOR_PEERING"] == "ml-ops"
    peering = rendered.one("ClusterKopfPeering", "ml-ops")
    assert peering["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    assert "clusterkopfpeerings" in rule_resources(rendered.one("ClusterRole", "streamtrain-operator")["rules"])


def test_it_should_create_a_peering_object_in_each_watched_namespace() -> None:
    rendered = render({"peering": {"enabled": True}, "replicaCount": 2,
                       "watch": {"clusterWide": False, "namespaces": ["a", "b"]}})
    assert sorted(p["metadata"]["namespace"] for p in rendered.all("KopfPeering")) == ["a", "b"]
    assert all("kopfpeerings" in rule_resources(role["rules"]) for role in rendered.all("Role"))


def test_it_should_use_the_app_version_as_the_default_image_tag() -> None:
    chart = yaml.safe_load((helm.CHART_DIR / "Chart.yaml").read_text())
    container = operator_container(render().one("Deployment"))
    assert container["image"] == f"ghcr.io/streamtrain/streamtrain-operator:{chart['appVersion']}"
    assert container["command"] == ["streamtrain-operator"]


def test_it_should_pin_the_image_by_digest_when_given() -> None:
    digest = "sha256:" + "ab" * 32
    container = operator_container(render({"image": {"digest": digest}}).one("Deployment"))
    assert container["image"] == f"ghcr.io/streamtrain/streamtrain-operator@{digest}"


def test_it_should_set_the_workload_image_apart_from_the_operator_image() -> None:
    from streamtrain_operator.settings import OperatorSettings

    chart = yaml.safe_load((helm.CHART_DIR / "Chart.yaml").read_text())
    default = OperatorSettings.from_env(operator_env(render().one("Deployment")))
    assert default.pods.image == f"ghcr.io/streamtrain/streamtrain-workload:{chart['appVersion']}"
    digest = "sha256:" + "cd" * 32
    mirrored = render({"image": {"repository": "mirror.example/op"}, "workloadImage": {
        "repository": "mirror.example/work", "digest": digest, "pullPolicy": "Always"}})
    deployment = mirrored.one("Deployment")
    settings = OperatorSettings.from_env(operator_env(deployment))
    assert operator_container(deployment)["image"].startswith("mirror.example/op:")
    assert (settings.pods.image, settings.pods.image_pull_policy) == (
        f"mirror.example/work@{digest}", "Always")


def test_it_should_pass_extra_environment_variables() -> None:
    container = operator_container(render({"operator": {
        "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://p:3128"}],
    }}).one("Deployment"))
    assert {"name": "HTTPS_PROXY", "value": "http://p:3128"} in container["env"]


# ---------------------------------------------------------------- optional objects

def test_it_should_create_a_service_monitor_only_when_asked() -> None:
    assert render().all("ServiceMonitor") == []
    rendered = render({"metrics": {"serviceMonitor": {"enabled": True,
                                                      "labels": {"release": "prom"}}}})
    monitor = rendered.one("ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    service = rendered.one("Service", "streamtrain-operator-metrics")
    selected = monitor["spec"]["selector"]["matchLabels"]
    assert selected.items() <= service["metadata"]["labels"].items()


def test_it_should_drop_the_metrics_port_and_service_when_metrics_are_off() -> None:
    rendered = render({"metrics": {"enabled": False}})
    assert [service["metadata"]["name"] for service in rendered.all("Service")] == [
        "streamtrain-operator-progress"]
    ports = operator_container(rendered.one("Deployment"))["ports"]
    assert [port["name"] for port in ports] == ["health", "progress"]
    assert operator_env(rendered.one("Deployment"))["STREAMTRAIN_OPERATOR_METRICS_PORT"] == "0"


def test_it_should_limit_traffic_with_a_network_policy_when_asked() -> None:
    assert render().all("NetworkPolicy") == []
    policy = render({"networkPolicy": {"enabled": True}}).one("NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    egress_ports = {port["port"] for rule in policy["spec"]["egress"] for port in rule["ports"]}
    assert egress_ports == {53, 443, 6443}
    progress = next(rule for rule in policy["spec"]["ingress"]
                    if rule["ports"] == [{"port": "progress", "protocol": "TCP"}])
    assert progress["from"] == [{"namespaceSelector": {}, "podSelector": {"matchLabels": {
        "app.kubernetes.io/managed-by": "streamtrain-operator"}}}]


def test_it_should_serve_progress_behind_a_service_the_pods_are_told_about() -> None:
    from streamtrain_operator.settings import OperatorSettings

    rendered = render()
    service = rendered.one("Service", "streamtrain-operator-progress")
    assert service["spec"]["ports"] == [{"name": "progress", "port": 8081,
                                         "targetPort": "progress", "protocol": "TCP"}]
    settings = OperatorSettings.from_env(operator_env(rendered.one("Deployment")))
    assert settings.pods.progress_url == (
        "https://streamtrain-operator-progress.streamtrain-system.svc:8081")
    off = OperatorSettings.from_env(operator_env(render({"progress": {"enabled": False}}).one(
        "Deployment")))
    assert (off.progress_port, off.pods.progress_url) == (0, "")


def test_it_should_create_a_disruption_budget_when_asked() -> None:
    assert render().all("PodDisruptionBudget") == []
    budget = render({"podDisruptionBudget": {"enabled": True}}).one("PodDisruptionBudget")
    assert budget["spec"]["minAvailable"] == 1


# ---------------------------------------------------------------- names and labels

def test_it_should_label_every_object_with_the_recommended_labels() -> None:
    everything = render({"peering": {"enabled": True}, "networkPolicy": {"enabled": True},
                         "podDisruptionBudget": {"enabled": True},
                         "metrics": {"serviceMonitor": {"enabled": True}},
                         "commonLabels": {"team": "ml"}})
    for document in everything.documents:
        labels = document["metadata"]["labels"]
        for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance",
                    "app.kubernetes.io/version", "app.kubernetes.io/managed-by", "helm.sh/chart"):
            assert key in labels, f"{document['kind']} lacks {key}"
        assert labels["team"] == "ml"


@pytest.mark.parametrize(
    ("release", "values"),
    [
        ("a-release-name-of-fifty-three-characters-which-is-max", {}),
        ("ops", {"fullnameOverride": "f" * 63,
                 "watch": {"clusterWide": False, "namespaces": ["ml"]}}),
    ],
    ids=["long-release", "long-override"],
)
def test_it_should_keep_names_and_labels_within_63_characters(
    release: str, values: dict[str, Any],
) -> None:
    rendered = render(values, release=release)
    for document in rendered.documents:
        assert len(document["metadata"]["name"]) <= 63
        assert not document["metadata"]["name"].endswith("-")
        for value in document["metadata"]["labels"].values():
            assert len(value) <= 63
    kinds_and_names = [(d["kind"], d["metadata"]["name"]) for d in rendered.documents
                       if "namespace" not in d["metadata"]]
    assert len(set(kinds_and_names)) == len(kinds_and_names), "truncation made names collide"


def test_it_should_ship_an_install_manifest_rendered_from_the_chart() -> None:
    assert helm.stale_files() == [], "run python -m localparts.helm sync"
