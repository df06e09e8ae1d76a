{{- define "binderhub.labels" -}}
app: binder
release: {{ .Release.Name }}
chart: {{ .Chart.Name }}-{{ .Chart.Version | replace "+" "_" }}
heritage: {{ .Release.Service }}
mybinder.org/stand-in: "true"
{{- end }}

{{- define "binderhub.matchLabels" -}}
app: binder
release: {{ .Release.Name }}
{{- end }}

{{- /* What the real chart stores in the binder-secret (and what binderhub_config.py reads). */ -}}
{{- define "binderhub.secretValues" -}}
{{- pick .Values "config" "extraConfig" "imageCleaner" "dind" "registry" | toYaml }}
{{- end }}
