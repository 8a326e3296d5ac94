{{/*
Name of the chart, or nameOverride.
*/}}
{{- define "lvs-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified name: the release name when it already contains the chart name (release "lvs-operator"
gives "lvs-operator"), else "<release>-<chart>". Component names append "-controller", "-agent", ... so
it is cut at 52 characters.
*/}}
{{- define "lvs-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Namespace of every namespaced object: namespace.name, else the release namespace.
*/}}
{{- define "lvs-operator.namespace" -}}
{{- .Values.namespace.name | default .Release.Namespace }}
{{- end }}

{{- define "lvs-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "lvs-operator.labels" -}}
helm.sh/chart: {{ include "lvs-operator.chart" . }}
{{ include "lvs-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: lvs-operator
{{- end }}

{{- define "lvs-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lvs-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "lvs-operator.controller.name" -}}
{{- printf "%s-controller" (include "lvs-operator.fullname" .) }}
{{- end }}

{{- define "lvs-operator.agent.name" -}}
{{- printf "%s-agent" (include "lvs-operator.fullname" .) }}
{{- end }}

{{- define "lvs-operator.controller.selectorLabels" -}}
{{ include "lvs-operator.selectorLabels" . }}
app.kubernetes.io/component: controller
{{- end }}

{{/*
The label the controller puts on the pods of both agent DaemonSets (lvs-agent-director and
lvs-agent-realserver, src/controller/daemonsets.ts); the PodMonitor selects them in the release namespace.
*/}}
{{- define "lvs-operator.agent.selectorLabels" -}}
app.kubernetes.io/name: lvs-agent
{{- end }}

{{/*
Image reference: repository, then @digest or :tag (default: the chart's appVersion).
Call with (dict "image" <values> "fallback" <values> "chart" .Chart).
*/}}
{{- define "lvs-operator.imageRef" -}}
{{- $repo := .image.repository | default .fallback.repository -}}
{{- $digest := .image.digest | default .fallback.digest -}}
{{- $tag := .image.tag | default .fallback.tag | default .chart.AppVersion -}}
{{- if $digest -}}
{{- printf "%s@%s" $repo $digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (toString $tag) -}}
{{- end -}}
{{- end }}

{{- define "lvs-operator.controller.image" -}}
{{- include "lvs-operator.imageRef" (dict "image" .Values.image "fallback" .Values.image "chart" .Chart) -}}
{{- end }}

{{- define "lvs-operator.agent.image" -}}
{{- include "lvs-operator.imageRef" (dict "image" .Values.agent.image "fallback" .Values.image "chart" .Chart) -}}
{{- end }}

{{/*
The controller's configuration file (config.json in the <fullname>-config ConfigMap): everything it
needs to run the agent DaemonSets, to plan failover and to refuse reserved VIPs.
*/}}
{{- define "lvs-operator.config" -}}
{{- $agent := dict
  "image" (include "lvs-operator.agent.image" .)
  "imagePullPolicy" (.Values.agent.image.pullPolicy | default .Values.image.pullPolicy)
  "directorNodeSelector" .Values.agent.directorNodeSelector
  "realServerNodeSelector" .Values.agent.realServerNodeSelector
  "tolerations" .Values.agent.tolerations
  "resources" .Values.agent.resources
  "metricsPort" .Values.agent.metricsPort
  "priorityClassName" (.Values.agent.priorityClassName | default "")
  "serviceAccountName" (include "lvs-operator.agent.name" .)
-}}
{{- $config := dict
  "agent" $agent
  "defaultDirectorSelector" .Values.defaultDirectorSelector
  "failover" (dict
    "enabled" .Values.failover.enabled
    "leaseDurationSeconds" .Values.failover.leaseDurationSeconds
    "renewIntervalMilliseconds" .Values.failover.renewIntervalMilliseconds
    "syncId" .Values.failover.syncId
    "heartbeatIntervalMilliseconds" .Values.failover.heartbeatIntervalMilliseconds)
  "reserved" (dict
    "serviceCIDRs" (.Values.reserved.serviceCIDRs | default list)
    "podCIDRs" (.Values.reserved.podCIDRs | default list)
    "addresses" (.Values.reserved.addresses | default list))
-}}
{{- toPrettyJson $config }}
{{- end }}

{{/*
Checks the schema cannot express.
*/}}
{{- define "lvs-operator.validate" -}}
{{- $leaseMs := mul .Values.failover.leaseDurationSeconds 1000 }}
{{- if ge (mul 2 (int .Values.failover.renewIntervalMilliseconds)) (int $leaseMs) }}
{{- fail (printf "failover.renewIntervalMilliseconds (%v) must be less than half of failover.leaseDurationSeconds (%v s): the holder steps down one interval before a standby may take over" .Values.failover.renewIntervalMilliseconds .Values.failover.leaseDurationSeconds) }}
{{- end }}
{{- $hb := int (.Values.failover.heartbeatIntervalMilliseconds | default 0) }}
{{- if and (gt $hb 0) (gt (mul 5 $hb) (int $leaseMs)) }}
{{- fail (printf "failover.heartbeatIntervalMilliseconds (%v) must be 0 (off) or at most a fifth of failover.leaseDurationSeconds (%v s): a holder is judged down after 5 missed heartbeats" .Values.failover.heartbeatIntervalMilliseconds .Values.failover.leaseDurationSeconds) }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled (not .Values.metrics.service.enabled) }}
{{- fail "serviceMonitor.enabled needs metrics.service.enabled: the ServiceMonitor scrapes the controller through that Service" }}
{{- end }}
{{- end }}
