{{/* The name every object starts with: the release name when it already says caelus. */}}
{{- define "caelus.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "caelus.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "caelus.labels" -}}
{{ include "caelus.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "caelus.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "caelus.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "caelus.installationId" -}}
{{- default .Release.Name .Values.installationId -}}
{{- end -}}

{{- define "caelus.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The database Secret: the user's, or the one the chart makes for the bundled PostgreSQL. */}}
{{- define "caelus.databaseSecret" -}}
{{- if .Values.postgresql.enabled -}}
{{- printf "%s-database" (include "caelus.fullname" .) -}}
{{- else -}}
{{- .Values.database.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "caelus.databaseKey" -}}
{{- if .Values.postgresql.enabled -}}url{{- else -}}{{ .Values.database.secretKey }}{{- end -}}
{{- end -}}

{{/* One database, not two and not none. */}}
{{- define "caelus.checkDatabase" -}}
{{- if and .Values.postgresql.enabled .Values.database.existingSecret -}}
{{- fail "set either database.existingSecret (an existing PostgreSQL) or postgresql.enabled (the bundled one), not both" -}}
{{- end -}}
{{- if and (not .Values.postgresql.enabled) (not .Values.database.existingSecret) -}}
{{- fail "no database: set database.existingSecret to a Secret holding the PostgreSQL URL, or postgresql.enabled=true" -}}
{{- end -}}
{{- end -}}

{{/* Pod Security "restricted" for every Caelus pod. */}}
{{- define "caelus.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "caelus.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}

{{/* The environment every Caelus process shares; the database URL comes first. */}}
{{- define "caelus.env" -}}
- name: CAELUS_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "caelus.databaseSecret" . }}
      key: {{ include "caelus.databaseKey" . }}
- name: CAELUS_INSTALLATION_ID
  value: {{ include "caelus.installationId" . | quote }}
- name: CAELUS_DATA_DIR
  value: /var/lib/caelus
- name: CAELUS_LOG_FORMAT
  value: json
- name: HOME
  value: /tmp
{{- end -}}

{{/* Writable places on a read-only root filesystem: the chart cache and /tmp. */}}
{{- define "caelus.volumeMounts" -}}
- name: data
  mountPath: /var/lib/caelus
- name: tmp
  mountPath: /tmp
{{- end -}}

{{- define "caelus.volumes" -}}
- name: data
  emptyDir: {}
- name: tmp
  emptyDir: {}
{{- end -}}

{{- define "caelus.podCommon" -}}
serviceAccountName: {{ include "caelus.serviceAccountName" . }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- include "caelus.podSecurityContext" . | nindent 2 }}
{{- end -}}
