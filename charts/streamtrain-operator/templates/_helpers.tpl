{{/*
Names and labels shared by every template. Kubernetes names and label values
are limited to 63 characters, so every generated name is truncated.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "streamtrain-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* "<release>-<chart>" (or just the release when it already contains the chart name), or fullnameOverride. */}}
{{- define "streamtrain-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* "<chart>-<version>" for the helm.sh/chart label. */}}
{{- define "streamtrain-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the operator pods; never change them on upgrade. */}}
{{- define "streamtrain-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "streamtrain-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object the chart creates. */}}
{{- define "streamtrain-operator.labels" -}}
helm.sh/chart: {{ include "streamtrain-operator.chart" . }}
{{ include "streamtrain-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: streamtrain
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The operator's ServiceAccount name. */}}
{{- define "streamtrain-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "streamtrain-operator.fullname" .) .Values.serviceAccount.name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator image reference: repository@digest, or repository:tag (tag defaults to appVersion). */}}
{{- define "streamtrain-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The workload image reference (trainer, evaluator and online pods): repository@digest, or repository:tag (tag defaults to appVersion). */}}
{{- define "streamtrain-operator.workloadImage" -}}
{{- if .Values.workloadImage.digest }}
{{- printf "%s@%s" .Values.workloadImage.repository .Values.workloadImage.digest }}
{{- else }}
{{- printf "%s:%s" .Values.workloadImage.repository (default .Chart.AppVersion .Values.workloadImage.tag) }}
{{- end }}
{{- end }}

{{/* Operator replicas: one unless peering lets several share the work safely. */}}
{{- define "streamtrain-operator.replicas" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.peering.enabled) }}
{{- fail "replicaCount must be 1 unless peering.enabled=true: two operators without peering would both act on every job (duplicate pods, conflicting status); set peering.enabled=true for an active/standby pair" }}
{{- end }}
{{- if .Values.peering.enabled }}{{ .Values.replicaCount }}{{ else }}1{{ end }}
{{- end }}

{{/* Namespaces the operator watches when not cluster-wide (the release namespace when none are listed). */}}
{{- define "streamtrain-operator.watchedNamespaces" -}}
{{- if .Values.watch.namespaces }}
{{- join "," .Values.watch.namespaces }}
{{- else }}
{{- .Release.Namespace }}
{{- end }}
{{- end }}

{{/* The full name with a suffix (e.g. "metrics"), still within 63 characters. */}}
{{- define "streamtrain-operator.suffixedName" -}}
{{- printf "%s-%s" (include "streamtrain-operator.fullname" .context | trunc (int (sub 62 (len .suffix))) | trimSuffix "-") .suffix }}
{{- end }}
