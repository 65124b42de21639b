{{/*
The operator's settings, as the STREAMTRAIN_OPERATOR_* environment variables
it reads at start (operator/streamtrain_operator/settings.py): what it
watches, how replicas share the work, where its endpoints listen.
*/}}

{{- define "streamtrain-operator.env" -}}
{{- if not .Values.watch.clusterWide }}
- name: STREAMTRAIN_OPERATOR_NAMESPACES
  value: {{ include "streamtrain-operator.watchedNamespaces" . | quote }}
{{- end }}
{{- if .Values.peering.enabled }}
- name: STREAMTRAIN_OPERATOR_PEERING
  value: {{ .Values.peering.name | quote }}
{{- end }}
- name: STREAMTRAIN_OPERATOR_LIVENESS_PORT
  value: {{ .Values.health.port | quote }}
- name: STREAMTRAIN_OPERATOR_PROGRESS_PORT
  value: {{ if .Values.progress.enabled }}{{ .Values.progress.port | quote }}{{ else }}"0"{{ end }}
{{- if .Values.progress.enabled }}
- name: STREAMTRAIN_OPERATOR_PROGRESS_URL
  value: {{ printf "https://%s.%s.svc:%v" (include "streamtrain-operator.suffixedName" (dict "context" . "suffix" "progress")) .Release.Namespace .Values.progress.port | quote }}
{{- end }}
- name: STREAMTRAIN_OPERATOR_METRICS_PORT
  value: {{ if .Values.metrics.enabled }}{{ .Values.metrics.port | quote }}{{ else }}"0"{{ end }}
- name: STREAMTRAIN_OPERATOR_RESYNC_INTERVAL_S
  value: {{ .Values.operator.resyncIntervalSeconds | quote }}
- name: STREAMTRAIN_OPERATOR_WORKERS
  value: {{ .Values.operator.workers | quote }}
- name: STREAMTRAIN_OPERATOR_WORKLOAD_IMAGE
  value: {{ include "streamtrain-operator.workloadImage" . | quote }}
- name: STREAMTRAIN_OPERATOR_WORKLOAD_IMAGE_PULL_POLICY
  value: {{ .Values.workloadImage.pullPolicy | quote }}
{{- with .Values.operator.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}
