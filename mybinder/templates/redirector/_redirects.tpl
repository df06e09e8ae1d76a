{{- /* Validates redirector.redirects and returns them; fails naming the bad entry and the fix. */ -}}
{{- define "mybinder.redirector.redirects" -}}
{{- $seen := dict }}
{{- range $i, $r := .Values.redirector.redirects }}
{{- $where := printf "redirector.redirects[%d]" $i }}
{{- if not (kindIs "map" $r) }}
{{- fail (printf "%s must be a mapping like {type: host, host: {from: a.example.org, to: b.example.org}}" $where) }}
{{- end }}
{{- $from := "" }}
{{- if kindIs "map" $r.host }}{{ $from = $r.host.from | default "" }}{{ end }}
{{- if not $from }}
{{- fail (printf "%s needs host.from, the host name to redirect from" $where) }}
{{- end }}
{{- if hasKey $seen $from }}
{{- fail (printf "%s redirects %s, which %s already redirects: keep one entry per source host" $where $from (get $seen $from)) }}
{{- end }}
{{- $_ := set $seen $from $where }}
{{- if eq ($r.type | default "") "host" }}
{{- if not $r.host.to }}
{{- fail (printf "%s (type host) needs host.to, the host name to redirect %s to (the path is kept)" $where $from) }}
{{- end }}
{{- else if eq ($r.type | default "") "url" }}
{{- if not (regexMatch "^https?://" ($r.url | default "")) }}
{{- fail (printf "%s (type url) needs url, the http(s) URL every request to %s is redirected to" $where $from) }}
{{- end }}
{{- else }}
{{- fail (printf "%s has type %q: use type host (redirect to another host, keeping the path) or type url (redirect to one fixed URL)" $where ($r.type | default "")) }}
{{- end }}
{{- end }}
{{- end }}
