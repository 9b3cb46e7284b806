{{/* Names and labels. */}}
{{- define "ward.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ward.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "ward.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "ward.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ward.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ward.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ward.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "ward.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: {{ .Values.mode }}
{{- end -}}

{{- define "ward.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ward.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "ward.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Whether this mode runs pods of its own. */}}
{{- define "ward.runsPods" -}}
{{- if ne .Values.mode "sidecar" }}true{{ end -}}
{{- end -}}

{{/*
Whether ward runs inside Envoy (gateway mode, gateway.module.enabled):
no ward container, the module copied by an init container.
*/}}
{{- define "ward.module" -}}
{{- if and (eq .Values.mode "gateway") .Values.gateway.module.enabled }}true{{ end -}}
{{- end -}}

{{/* Where Envoy's container finds libward_envoy.so (an emptyDir). */}}
{{- define "ward.moduleDir" -}}/var/lib/ward-module{{- end -}}

{{/*
Checks the schema cannot express; each failure names the value to fix.
*/}}
{{- define "ward.validate" -}}
{{- include "ward.noInlineSecrets" (list "config" .Values.config) -}}
{{- if regexMatch "^rediss?://[^/@]*:[^/@]+@" (toString .Values.redis.url) -}}
{{- fail "redis.url holds a password, which would be stored in a ConfigMap: put it in the Secret secrets.existingSecret names and set redis.passwordSecretKey" -}}
{{- end -}}
{{- if hasKey .Values.config "listen" -}}
{{- fail "config.listen is set by the chart: use ports.grpc / ports.admin (and http.*, sidecar.*, connections.*) instead" -}}
{{- end -}}
{{- if and .Values.redis.passwordSecretKey (not .Values.secrets.existingSecret) -}}
{{- fail "redis.passwordSecretKey needs secrets.existingSecret (the Secret that holds that key)" -}}
{{- end -}}
{{- if and .Values.secrets.env (not .Values.secrets.existingSecret) -}}
{{- fail "secrets.env needs secrets.existingSecret (the Secret its keys come from)" -}}
{{- end -}}
{{- if and (eq .Values.mode "gateway") (not .Values.gateway.backend.host) -}}
{{- fail "mode gateway needs gateway.backend.host: the backend Service to protect, e.g. orders.shop.svc.cluster.local" -}}
{{- end -}}
{{- with .Values.config.management -}}
{{- if or (hasKey . "listen") (hasKey . "auth") -}}
{{- fail "config.management.listen and config.management.auth are set by the chart: use management.enabled / port / tokenSecretKey / tls instead" -}}
{{- end -}}
{{- if and (hasKey . "backchannel_logout") (not $.Values.management.enabled) -}}
{{- fail "config.management.backchannel_logout needs management.enabled: the endpoint is served on the management port" -}}
{{- end -}}
{{- end -}}
{{- if .Values.management.enabled -}}
{{- if ne .Values.mode "standalone" -}}
{{- fail "management.enabled is for mode standalone (one Service that login services and operators call)" -}}
{{- end -}}
{{- if not (or .Values.management.tokenSecretKey .Values.management.tls.enabled) -}}
{{- fail "management.enabled needs management.tokenSecretKey or management.tls.enabled: a way to authenticate callers (the API is never open)" -}}
{{- end -}}
{{- if not .Values.secrets.existingSecret -}}
{{- fail "management.enabled needs secrets.existingSecret (the Secret holding its token or certificates)" -}}
{{- end -}}
{{- if and .Values.management.tls.enabled (not .Values.management.tls.allowedIdentities) -}}
{{- fail "management.tls.enabled needs management.tls.allowedIdentities: the client certificate DNS names that may call" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.http.enabled (ne .Values.mode "standalone") -}}
{{- fail "http.enabled is for mode standalone (in sidecar and gateway modes the pod's Envoy uses gRPC)" -}}
{{- end -}}
{{- if and .Values.gateway.module.enabled (ne .Values.mode "gateway") -}}
{{- fail "gateway.module.enabled is for mode gateway (the chart runs the Envoy that loads the module only there)" -}}
{{- end -}}
{{- with .Values.identityToken }}{{ if .enabled }}
{{- if include "ward.module" $ -}}
{{- fail "identityToken needs ward's admin port to serve its keys, which gateway.module.enabled has not" -}}
{{- end -}}
{{- if and .keys (not .existingSecret) -}}
{{- fail "identityToken.keys needs identityToken.existingSecret (the Secret that holds the key files)" -}}
{{- end -}}
{{- if and (not .keys) (or $.Values.autoscaling.enabled (gt (int $.Values.replicas) 1)) -}}
{{- fail "identityToken without keys generates a key per pod: with more than one replica, give identityToken.existingSecret and identityToken.keys (every replica must sign with the same keys)" -}}
{{- end -}}
{{- end }}{{ end -}}
{{- if and (include "ward.module" .) .Values.serviceMonitor.enabled -}}
{{- fail "serviceMonitor.enabled needs ward's admin port, which gateway.module.enabled has not (the module's metrics are Envoy stats, on Envoy's admin port on 127.0.0.1): turn one off" -}}
{{- end -}}
{{- end -}}

{{/*
A secret written inline (`{value: ...}`, ward's secret form) anywhere in
`config`: refused, since `config` lands in a ConfigMap (and, with the
module, in Envoy's bootstrap and /config_dump). Takes (list PATH VALUE).
*/}}
{{- define "ward.noInlineSecrets" -}}
{{- $path := index . 0 -}}
{{- $v := index . 1 -}}
{{- if kindIs "map" $v -}}
{{- if and (hasKey $v "value") (eq (len $v) 1) -}}
{{- fail (printf "%s: an inline secret ({value: ...}) would be stored in a ConfigMap: put it in the Secret secrets.existingSecret names and refer to it with {file: ...} or {env: ...}" $path) -}}
{{- end -}}
{{- range $k, $x := $v }}{{ include "ward.noInlineSecrets" (list (printf "%s.%s" $path $k) $x) }}{{ end -}}
{{- else if kindIs "slice" $v -}}
{{- range $i, $x := $v }}{{ include "ward.noInlineSecrets" (list (printf "%s[%d]" $path $i) $x) }}{{ end -}}
{{- end -}}
{{- end -}}

{{/* ward's identity_token section from .Values.identityToken (empty when off). */}}
{{- define "ward.identityToken" -}}
{{- with .Values.identityToken }}{{ if .enabled -}}
issuer: {{ default (printf "http://%s.%s.svc:%v" (include "ward.fullname" $) $.Release.Namespace $.Values.ports.admin) .issuer | quote }}
publish_lead: {{ .publishLead | quote }}
{{- if .keys }}
keys:
{{- range .keys }}
  - pem_file: {{ printf "%s/%s" $.Values.identityToken.mountPath .file | quote }}
    algorithm: {{ default "ES256" .algorithm | quote }}
    {{- with .kid }}
    kid: {{ . | quote }}
    {{- end }}
    {{- with .notBefore }}
    not_before: {{ int64 . }}
    {{- end }}
{{- end }}
{{- end }}
{{- end }}{{ end -}}
{{- end -}}

{{/* The chart's part of ward's config; .Values.config is merged over it. */}}
{{- define "ward.defaultConfig" -}}
runtime:
  drain_delay: 5s
  shutdown_grace: 10s
log:
  format: json
  level: info
{{- with .Values.redis }}
{{- if .mode }}
store:
  redis:
    mode: {{ .mode }}
    {{- if eq .mode "standalone" }}
    url: {{ .url | quote }}
    {{- else }}
    nodes: {{ toJson .nodes }}
    {{- end }}
    {{- if eq .mode "sentinel" }}
    master_name: {{ .masterName | quote }}
    {{- end }}
    {{- with .username }}
    username: {{ . | quote }}
    {{- end }}
    {{- with .passwordSecretKey }}
    password: {file: {{ printf "%s/%s" $.Values.secrets.mountPath . | quote }}}
    {{- end }}
{{- end }}
{{- end }}
{{- if .Values.management.enabled }}
{{- $mount := .Values.secrets.mountPath }}
management:
  listen: {{ printf "0.0.0.0:%d" (int .Values.management.port) | quote }}
  auth:
    {{- with .Values.management.tokenSecretKey }}
    token_file: {{ printf "%s/%s" $mount . | quote }}
    {{- end }}
    {{- with .Values.management.tls }}
    {{- if .enabled }}
    tls:
      cert: {{ printf "%s/%s" $mount .certSecretKey | quote }}
      key: {{ printf "%s/%s" $mount .keySecretKey | quote }}
      client_ca: {{ printf "%s/%s" $mount .clientCaSecretKey | quote }}
      allowed_identities: {{ toJson .allowedIdentities }}
    {{- end }}
    {{- end }}
{{- end }}
{{- end -}}

{{/* `listen`, owned by the chart so probes, ports and sockets agree. */}}
{{- define "ward.listen" -}}
{{- $grpcHost := ternary "0.0.0.0" "127.0.0.1" (eq .Values.mode "standalone") -}}
grpc: {{ printf "%s:%d" $grpcHost (int .Values.ports.grpc) | quote }}
admin: {{ printf "0.0.0.0:%d" (int .Values.ports.admin) | quote }}
{{- if eq .Values.mode "sidecar" }}
unix_socket: {{ printf "%s/%s" .Values.sidecar.socketDir .Values.sidecar.socketName | quote }}
{{- end }}
{{- if .Values.http.enabled }}
http: {{ printf "0.0.0.0:%d" (int .Values.http.port) | quote }}
{{- end }}
{{- with .Values.connections }}
{{- if hasKey . "handshakeTimeout" }}
handshake_timeout: {{ .handshakeTimeout | quote }}
{{- end }}
{{- if hasKey . "maxConnections" }}
max_connections: {{ int .maxConnections }}
{{- end }}
{{- if hasKey . "keepaliveInterval" }}
keepalive_interval: {{ .keepaliveInterval | quote }}
{{- end }}
{{- if hasKey . "keepaliveTimeout" }}
keepalive_timeout: {{ .keepaliveTimeout | quote }}
{{- end }}
{{- if hasKey . "maxConcurrentStreams" }}
max_concurrent_streams: {{ int .maxConcurrentStreams }}
{{- end }}
{{- if hasKey . "maxHeaderListSize" }}
max_header_list_size: {{ int .maxHeaderListSize }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
The whole ward config file. With the module, the filter config Envoy
hands it: no `listen` and no `runtime` (Envoy listens; the module has its
own runtime), the rest the same.
*/}}
{{- define "ward.config" -}}
{{- include "ward.validate" . -}}
{{- $config := include "ward.defaultConfig" . | fromYaml -}}
{{- with (include "ward.identityToken" . | fromYaml) }}{{ $_ := set $config "identity_token" . }}{{ end -}}
{{- $config = mergeOverwrite $config (deepCopy .Values.config) -}}
{{- if include "ward.module" . -}}
{{- $_ := unset $config "runtime" -}}
{{- else -}}
{{- $_ := set $config "listen" (include "ward.listen" . | fromYaml) -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{/*
The module's init container: `ward install-module` from ward's image
(distroless: no shell to copy with) into the emptyDir Envoy loads from.
*/}}
{{- define "ward.installModule" -}}
name: install-module
image: {{ include "ward.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
args: ["install-module", {{ include "ward.moduleDir" . | quote }}]
resources:
  {{- toYaml .Values.resources | nindent 2 }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
volumeMounts:
  - {name: ward-module, mountPath: {{ include "ward.moduleDir" . }}}
{{- end -}}

{{/*
With the module, what ward's container would get goes to Envoy's: the
module reads the secret files and variables ward's config names, in
Envoy's process.
*/}}
{{- define "ward.moduleEnvoyMounts" -}}
- {name: ward-module, mountPath: {{ include "ward.moduleDir" . }}, readOnly: true}
{{- if .Values.secrets.existingSecret }}
- {name: ward-secrets, mountPath: {{ .Values.secrets.mountPath }}, readOnly: true}
{{- end }}
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "ward.moduleEnvoyEnv" -}}
- {name: ENVOY_DYNAMIC_MODULES_SEARCH_PATH, value: {{ include "ward.moduleDir" . | quote }}}
{{- with include "ward.env" . | trim }}
{{ . }}
{{- end }}
{{- end -}}

{{/* ward's environment (secrets.env, extraEnv): its container's, or with the module Envoy's. */}}
{{- define "ward.env" -}}
{{- range .Values.secrets.env }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef: {name: {{ $.Values.secrets.existingSecret }}, key: {{ .key }}}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The ward container (standalone, gateway, and the sidecar spec). */}}
{{- define "ward.container" -}}
name: ward
image: {{ include "ward.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
args: ["serve", "--config", "/etc/ward/ward.yaml"]
ports:
  {{- if eq .Values.mode "standalone" }}
  - {name: grpc, containerPort: {{ .Values.ports.grpc }}, protocol: TCP}
  {{- end }}
  {{- if .Values.http.enabled }}
  - {name: http-authz, containerPort: {{ .Values.http.port }}, protocol: TCP}
  {{- end }}
  {{- if .Values.management.enabled }}
  - {name: management, containerPort: {{ .Values.management.port }}, protocol: TCP}
  {{- end }}
  - {name: admin, containerPort: {{ .Values.ports.admin }}, protocol: TCP}
{{- with include "ward.env" . | trim }}
env:
  {{- . | nindent 2 }}
{{- end }}
livenessProbe:
  httpGet: {path: /healthz, port: admin}
  {{- toYaml .Values.probes.liveness | nindent 2 }}
readinessProbe:
  httpGet: {path: /readyz, port: admin}
  {{- toYaml .Values.probes.readiness | nindent 2 }}
resources:
  {{- toYaml .Values.resources | nindent 2 }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
volumeMounts:
  - {name: ward-config, mountPath: /etc/ward, readOnly: true}
  {{- if .Values.secrets.existingSecret }}
  - {name: ward-secrets, mountPath: {{ .Values.secrets.mountPath }}, readOnly: true}
  {{- end }}
  {{- if and .Values.identityToken.enabled .Values.identityToken.existingSecret }}
  - {name: ward-identity-keys, mountPath: {{ .Values.identityToken.mountPath }}, readOnly: true}
  {{- end }}
  {{- if eq .Values.mode "sidecar" }}
  - {name: ward-socket, mountPath: {{ .Values.sidecar.socketDir }}}
  {{- end }}
  {{- with .Values.extraVolumeMounts }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{/* The volumes the ward container mounts. */}}
{{- define "ward.volumes" -}}
{{- if include "ward.module" . -}}
- name: ward-module
  emptyDir: {sizeLimit: 64Mi}
{{- else -}}
- name: ward-config
  configMap: {name: {{ include "ward.fullname" . }}-config}
{{- end }}
{{- if .Values.secrets.existingSecret }}
- name: ward-secrets
  secret: {secretName: {{ .Values.secrets.existingSecret }}, defaultMode: 0440}
{{- end }}
{{- if and .Values.identityToken.enabled .Values.identityToken.existingSecret }}
- name: ward-identity-keys
  secret: {secretName: {{ .Values.identityToken.existingSecret }}, defaultMode: 0440}
{{- end }}
{{- if eq .Values.mode "sidecar" }}
- name: ward-socket
  emptyDir: {medium: Memory, sizeLimit: 1Mi}
{{- end }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}
