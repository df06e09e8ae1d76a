{{- define "mybinder.labels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/part-of: mybinder
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ .root.Chart.Name }}-{{ .root.Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "mybinder.selectorLabels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end }}

{{- /* Annotations of an ingress whose certificate the TLS provider issues (ACME). */ -}}
{{- define "mybinder.acmeAnnotations" -}}
{{- with .Values.tls.acmeAnnotations }}{{ toYaml . }}{{ end }}
{{- end }}

{{- /* PodDisruptionBudget for pods of a dependency chart, selected by that chart's own labels. */ -}}
{{- define "mybinder.dependencyPdb" -}}
{{- $root := .root }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ .name }}
  labels:
    {{- include "mybinder.labels" (dict "root" $root "name" .name) | nindent 4 }}
spec:
  minAvailable: {{ .budget.minAvailable }}
  selector:
    matchLabels:
      {{- toYaml .selector | nindent 6 }}
{{- end }}
