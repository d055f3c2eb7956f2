{{/* Chart name, possibly overridden. */}}
{{- define "mapleakprobe.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name prefix of every object. */}}
{{- define "mapleakprobe.fullname" -}}
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

{{- define "mapleakprobe.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "mapleakprobe.labels" -}}
helm.sh/chart: {{ include "mapleakprobe.chart" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mapleakprobe
{{- end }}

{{/* Selects the operator pods (controller and worker), not Redis. */}}
{{- define "mapleakprobe.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mapleakprobe.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of one component: call with (dict "ctx" $ "component" "controller"). */}}
{{- define "mapleakprobe.componentLabels" -}}
{{ include "mapleakprobe.labels" .ctx }}
{{ include "mapleakprobe.componentSelectorLabels" . }}
{{- end }}

{{- define "mapleakprobe.componentSelectorLabels" -}}
app.kubernetes.io/name: {{ if eq .component "redis" }}redis{{ else }}{{ include "mapleakprobe.name" .ctx }}{{ end }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "mapleakprobe.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "mapleakprobe.serviceAccountName" -}}
{{- $sa := index .ctx.Values.serviceAccount .component }}
{{- if $sa.create }}
{{- default (printf "%s-%s" (include "mapleakprobe.fullname" .ctx) .component) $sa.name }}
{{- else }}
{{- required (printf "serviceAccount.%s.name is required when serviceAccount.%s.create is false" .component .component) $sa.name }}
{{- end }}
{{- end }}

{{/* Name of the bundled Redis Service, StatefulSet and (generated) Secret. */}}
{{- define "mapleakprobe.redisName" -}}
{{- printf "%s-redis" (include "mapleakprobe.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The external Redis mode: url, sentinel or cluster; exactly one must be set.
*/}}
{{- define "mapleakprobe.externalRedisKind" -}}
{{- $e := .Values.redis.external }}
{{- $set := list }}
{{- if $e.url }}{{ $set = append $set "url" }}{{- end }}
{{- if $e.sentinel.addresses }}{{ $set = append $set "sentinel" }}{{- end }}
{{- if $e.cluster.nodes }}{{ $set = append $set "cluster" }}{{- end }}
{{- if ne (len $set) 1 }}
{{- fail (printf "redis.mode external needs exactly one of redis.external.url, redis.external.sentinel.addresses or redis.external.cluster.nodes (set: %s)" (join ", " $set | default "none")) }}
{{- end }}
{{- if and (has "sentinel" $set) (not $e.sentinel.masterName) }}
{{- fail "redis.external.sentinel.addresses needs redis.external.sentinel.masterName" }}
{{- end }}
{{- first $set }}
{{- end }}

{{- define "mapleakprobe.redisUrl" -}}
{{- if eq .Values.redis.mode "external" }}
{{- .Values.redis.external.url }}
{{- else }}
{{- printf "redis://%s:6379" (include "mapleakprobe.redisName" .) }}
{{- end }}
{{- end }}

{{/* The operator's Redis environment: the mode's address variables and the passwords from Secrets. */}}
{{- define "mapleakprobe.redisEnv" -}}
{{- $kind := "url" }}
{{- if eq .Values.redis.mode "external" }}{{ $kind = include "mapleakprobe.externalRedisKind" . }}{{- end }}
{{- $e := .Values.redis.external }}
{{- if eq $kind "url" }}
- name: REDIS_URL
  value: {{ include "mapleakprobe.redisUrl" . | quote }}
{{- else if eq $kind "sentinel" }}
- name: REDIS_SENTINELS
  value: {{ join "," $e.sentinel.addresses | quote }}
- name: REDIS_SENTINEL_MASTER
  value: {{ $e.sentinel.masterName | quote }}
{{- else }}
- name: REDIS_CLUSTER_NODES
  value: {{ join "," $e.cluster.nodes | quote }}
{{- end }}
{{- if and (ne $kind "url") $e.tls.enabled }}
- name: REDIS_TLS
  value: "true"
{{- end }}
{{- $secret := include "mapleakprobe.redisSecretName" . }}
{{- if $secret }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ include "mapleakprobe.redisSecretKey" . }}
{{- end }}
{{- if and (eq $kind "sentinel") $e.sentinel.auth.existingSecret }}
- name: REDIS_SENTINEL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $e.sentinel.auth.existingSecret }}
      key: {{ $e.sentinel.auth.existingSecretKey }}
{{- end }}
{{- end }}

{{/* Secret and key holding the Redis password; empty name: no password. */}}
{{- define "mapleakprobe.redisSecretName" -}}
{{- if eq .Values.redis.mode "external" }}
{{- .Values.redis.external.existingSecret }}
{{- else }}
{{- default (include "mapleakprobe.redisName" .) .Values.redis.auth.existingSecret }}
{{- end }}
{{- end }}

{{- define "mapleakprobe.redisSecretKey" -}}
{{- if eq .Values.redis.mode "external" }}
{{- .Values.redis.external.existingSecretKey }}
{{- else if .Values.redis.auth.existingSecret }}
{{- .Values.redis.auth.existingSecretKey }}
{{- else }}
{{- "redis-password" }}
{{- end }}
{{- end }}

{{/* The operator container's securityContext (also used by Redis). */}}
{{- define "mapleakprobe.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Pod spec shared by the controller and the worker: (dict "ctx" $ "component" "worker" "args" list). */}}
{{- define "mapleakprobe.operatorPod" -}}
{{- $v := index .ctx.Values .component -}}
metadata:
  labels:
    {{- include "mapleakprobe.componentLabels" . | nindent 4 }}
    {{- with $v.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $v.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "mapleakprobe.serviceAccountName" . }}
  automountServiceAccountToken: true
  {{- with .ctx.Values.image.pullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
    fsGroup: 65532
    seccompProfile:
      type: RuntimeDefault
  {{- /* One value: the operator's own deadline is 5 s shorter, so it exits before the kubelet's SIGKILL. */}}
  {{- $grace := int .ctx.Values.terminationGracePeriodSeconds }}
  terminationGracePeriodSeconds: {{ $grace }}
  containers:
    - name: {{ .component }}
      image: {{ include "mapleakprobe.image" .ctx | quote }}
      imagePullPolicy: {{ .ctx.Values.image.pullPolicy }}
      args:
        {{- toYaml (concat .args (list "--shutdown-timeout" (printf "%ds" (sub $grace 5)))) | nindent 8 }}
      env:
        - name: POD_NAMESPACE
          valueFrom:
            fieldRef:
              fieldPath: metadata.namespace
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        {{- include "mapleakprobe.redisEnv" .ctx | trim | nindent 8 }}
        - name: LOG_LEVEL
          value: {{ .ctx.Values.logLevel | quote }}
        - name: HOME
          value: /tmp
        {{- $tls := .ctx.Values.redis.external.tls }}
        {{- if and (eq .ctx.Values.redis.mode "external") $tls.caSecret }}
        - name: NODE_EXTRA_CA_CERTS
          value: /etc/mapleakprobe/redis-ca/{{ $tls.caSecretKey }}
        {{- end }}
        {{- with $v.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        - name: http
          containerPort: 8080
          protocol: TCP
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
        initialDelaySeconds: 5
        periodSeconds: 10
        timeoutSeconds: 5
        failureThreshold: 6
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        periodSeconds: 5
        timeoutSeconds: 5
        failureThreshold: 3
      {{- with $v.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- include "mapleakprobe.containerSecurityContext" . | nindent 8 }}
        runAsUser: 65532
        runAsGroup: 65532
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        {{- if and (eq .ctx.Values.redis.mode "external") $tls.caSecret }}
        - name: redis-ca
          mountPath: /etc/mapleakprobe/redis-ca
          readOnly: true
        {{- end }}
  volumes:
    - name: tmp
      emptyDir:
        sizeLimit: 256Mi
    {{- if and (eq .ctx.Values.redis.mode "external") $tls.caSecret }}
    - name: redis-ca
      secret:
        secretName: {{ $tls.caSecret }}
        items:
          - key: {{ $tls.caSecretKey }}
            path: {{ $tls.caSecretKey }}
    {{- end }}
  {{- with $v.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* Operator flags for the admin's ceilings (values.limits); both components need them (the controller reports which applied). */}}
{{- define "mapleakprobe.limitArgs" -}}
{{- $l := .Values.limits -}}
{{- $args := list "--max-profile-bytes" (toString $l.maxProfileBytes) "--max-inflated-bytes" (toString $l.maxInflatedBytes) "--max-compression-ratio" (toString (int $l.maxCompressionRatio)) "--max-decode-time" (toString $l.maxDecodeTime) "--max-request-timeout" (toString $l.maxRequestTimeout) "--max-symbol-requests" (toString (int $l.maxSymbolRequests)) "--max-symbol-answer-bytes" (toString $l.maxSymbolAnswerBytes) "--max-debug1-bytes" (toString $l.maxDebug1Bytes) "--min-debug1-interval" (toString $l.minDebug1Interval) "--max-capture-time" (toString $l.maxCaptureTime) "--max-inflight-bytes" (toString $l.maxInflightBytes) "--max-knowledge-bytes" (toString $l.maxKnowledgeBytes) "--max-knowledge-bytes-per-namespace" (toString $l.maxKnowledgeBytesPerNamespace) "--max-targets-per-probe" (toString (int $l.maxTargetsPerProbe)) "--max-probes-per-namespace" (toString (int $l.maxProbesPerNamespace)) "--min-interval" (toString $l.minInterval) "--max-window" (toString (int $l.maxWindow)) "--max-redis-bytes-per-target" (toString $l.maxRedisBytesPerTarget) "--max-redis-bytes-per-namespace" (include "mapleakprobe.namespaceRedisBudget" .) "--max-stored-profile-bytes" (toString $l.maxStoredProfileBytes) "--max-usages-per-capture" (toString (int $l.maxUsagesPerCapture)) "--max-summary-bytes" (toString $l.maxSummaryBytes) "--max-events-per-round" (toString (int $l.maxEventsPerRound)) "--max-incidents" (toString (int $l.maxIncidents)) "--incident-retention" (toString $l.incidentRetention) "--max-trigger-follows" (toString (int $l.maxTriggerFollows)) "--min-trigger-interval" (toString $l.minTriggerInterval) "--trigger-poll-interval" (toString $l.triggerPollInterval) "--max-findings" (toString (int $l.maxFindings)) "--max-remote-pod-watches" (toString (int $l.maxRemotePodWatches)) "--max-remote-pod-watch-time" (toString $l.maxRemotePodWatchTime) "--max-remote-pod-watch-bytes" (toString $l.maxRemotePodWatchBytes) -}}
{{- /* 0: the operator's own default, half of its --concurrency rounded up. */}}
{{- if $l.maxActiveRoundsPerNamespace }}
{{- $args = concat $args (list "--max-active-rounds-per-namespace" (toString (int $l.maxActiveRoundsPerNamespace))) }}
{{- end }}
{{- $args | toJson -}}
{{- end }}

{{/*
Redis bytes per namespace: limits.maxRedisBytesPerNamespace, or 3/4 of the
Redis' maxmemory (bundled or external; Redis units: k/m/g are 1000s,
kb/mb/gb 1024s) shared by limits.redisNamespacesAtBudget namespaces.
*/}}
{{- define "mapleakprobe.namespaceRedisBudget" -}}
{{- $l := .Values.limits -}}
{{- if $l.maxRedisBytesPerNamespace -}}
{{- toString $l.maxRedisBytesPerNamespace -}}
{{- else -}}
{{- $maxmemory := lower (toString (ternary .Values.redis.bundled.maxmemory .Values.redis.external.maxmemory (eq .Values.redis.mode "bundled"))) | replace " " "" -}}
{{- if not (regexMatch "^[0-9]+(b|k|kb|m|mb|g|gb)?$" $maxmemory) -}}
{{- fail "limits.maxRedisBytesPerNamespace is derived from the Redis' maxmemory (redis.bundled.maxmemory, or redis.external.maxmemory for an external Redis), which is empty or not a Redis size such as 768mb: set one of them" -}}
{{- end -}}
{{- $units := dict "" 1 "b" 1 "k" 1000 "kb" 1024 "m" 1000000 "mb" 1048576 "g" 1000000000 "gb" 1073741824 -}}
{{- $number := regexFind "^[0-9]+" $maxmemory -}}
{{- $bytes := mul (int64 $number) (int64 (get $units (trimPrefix $number $maxmemory))) -}}
{{- div (mul $bytes 3) (mul 4 (int64 $l.redisNamespacesAtBudget)) | toString -}}
{{- end -}}
{{- end }}
