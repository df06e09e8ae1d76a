{{- /* STAND-IN helpers: names and labels follow the real chart (app/component/release). */ -}}

{{- define "jupyterhub.labels" -}}
app: {{ .Values.nameOverride | default .Chart.Name | trunc 63 | trimSuffix "-" }}
release: {{ .Release.Name }}
chart: {{ .Chart.Name }}-{{ .Chart.Version | replace "+" "_" }}
heritage: {{ .Release.Service }}
mybinder.org/stand-in: "true"
{{- end }}

{{- define "jupyterhub.matchLabels" -}}
app: {{ .Values.nameOverride | default .Chart.Name | trunc 63 | trimSuffix "-" }}
release: {{ .Release.Name }}
{{- end }}

{{- /* A secret value: the configured one, else the one already stored in the hub Secret
       (so upgrades keep it), else a new random one: the real chart's behaviour. */ -}}
{{- define "jupyterhub.secretValue" -}}
{{- $ctx := index . 0 -}}
{{- $key := index . 1 -}}
{{- $configured := index . 2 -}}
{{- if $configured -}}
{{- $configured -}}
{{- else -}}
{{- $state := lookup "v1" "Secret" $ctx.Release.Namespace "hub" | default (dict "data" (dict)) -}}
{{- if hasKey ($state.data | default dict) $key -}}
{{- index $state.data $key | b64dec -}}
{{- else -}}
{{- randAlphaNum 64 -}}
{{- end -}}
{{- end -}}
{{- end }}

{{- define "jupyterhub.cookieSecret" -}}
{{- include "jupyterhub.secretValue" (list . "hub.config.JupyterHub.cookie_secret" (.Values.hub.config.JupyterHub.cookie_secret | default .Values.hub.cookieSecret)) -}}
{{- end }}

{{- define "jupyterhub.proxyToken" -}}
{{- $configured := "" -}}
{{- with .Values.hub.config.ConfigurableHTTPProxy }}{{ $configured = .auth_token }}{{ end -}}
{{- include "jupyterhub.secretValue" (list . "hub.config.ConfigurableHTTPProxy.auth_token" ($configured | default .Values.proxy.secretToken)) -}}
{{- end }}

{{- define "jupyterhub.nodeAffinity" -}}
{{- $purpose := index . 0 -}}
{{- $match := index . 1 -}}
{{- if or (eq $match "require") (eq $match "prefer") }}
affinity:
  nodeAffinity:
    {{- if eq $match "require" }}
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
        - matchExpressions:
            - key: hub.jupyter.org/node-purpose
              operator: In
              values: [{{ $purpose }}]
    {{- else }}
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        preference:
          matchExpressions:
            - key: hub.jupyter.org/node-purpose
              operator: In
              values: [{{ $purpose }}]
    {{- end }}
{{- end }}
{{- end }}

{{- define "jupyterhub.coreAffinity" -}}
{{- include "jupyterhub.nodeAffinity" (list "core" .Values.scheduling.corePods.nodeAffinity.matchNodePurpose) }}
{{- end }}

{{- define "jupyterhub.userAffinity" -}}
{{- include "jupyterhub.nodeAffinity" (list "user" .Values.scheduling.userPods.nodeAffinity.matchNodePurpose) }}
{{- end }}

{{- /* PodDisruptionBudget spec like the real chart: 0 is a valid setting (typeIs, not truthiness). */ -}}
{{- define "jupyterhub.pdbSpec" -}}
{{- if not (typeIs "<nil>" .maxUnavailable) }}
maxUnavailable: {{ .maxUnavailable }}
{{- end }}
{{- if not (typeIs "<nil>" .minAvailable) }}
minAvailable: {{ .minAvailable }}
{{- end }}
{{- end }}
