{{/*
The operator's permissions. The rules are read from files/rbac/, a copy of
operator/rbac/ kept in sync by `python -m localparts.helm sync`, so the chart
and the plain manifests grant exactly the same. Only kopf's peering rules,
which the plain manifests do not use, are the chart's own.
*/}}

{{/* Rules of a (Cluster)Role file: its first YAML document's `rules`. */}}
{{- define "streamtrain-operator.rulesOf" -}}
{{- $document := index (regexSplit "(?m)^---\\s*$" (.context.Files.Get .path) -1) 0 | fromYaml }}
{{- required (printf "%s has no rules: run python -m localparts.helm sync" .path) $document.rules | toYaml }}
{{- end }}

{{/* Everything, for a ClusterRole when watching every namespace. */}}
{{- define "streamtrain-operator.clusterWideRules" -}}
{{- include "streamtrain-operator.rulesOf" (dict "context" . "path" "files/rbac/clusterrole.yaml") }}
{{- end }}

{{/* What the operator needs in each namespace it watches. */}}
{{- define "streamtrain-operator.namespacedRules" -}}
{{- include "streamtrain-operator.rulesOf" (dict "context" . "path" "files/rbac/role.yaml") }}
{{- end }}

{{/* TokenReviews of the pods' progress tokens: cluster-scoped, granted in both variants. */}}
{{- define "streamtrain-operator.tokenReviewRules" -}}
{{- include "streamtrain-operator.rulesOf" (dict "context" . "path" "files/rbac/tokenreview.yaml") }}
{{- end }}

{{/* kopf peering among replicas watching every namespace. */}}
{{- define "streamtrain-operator.clusterPeeringRules" -}}
- apiGroups: ["kopf.dev"]
  resources: ["clusterkopfpeerings"]
  verbs: ["get", "list", "watch", "patch"]
{{- end }}

{{/* kopf peering among replicas watching a list of namespaces. */}}
{{- define "streamtrain-operator.namespacedPeeringRules" -}}
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["get", "list", "watch", "patch"]
{{- end }}
