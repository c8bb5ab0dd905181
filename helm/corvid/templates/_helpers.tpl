{{/* Names. The full name is cut to 40 characters so that "<full>-registry" stays a valid
StatefulSet name (at most 52) and its pods' hostnames stay valid labels. */}}
{{- define "corvid.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "corvid.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The voters' StatefulSet (in single-node mode: the one combined node). */}}
{{- define "corvid.registryName" -}}
{{- if .Values.cluster.enabled -}}
{{- printf "%s-registry" (include "corvid.fullname" .) -}}
{{- else -}}
{{- printf "%s-server" (include "corvid.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "corvid.edgeName" -}}
{{- printf "%s-edge" (include "corvid.fullname" .) -}}
{{- end -}}

{{/* Headless Service governing the registry StatefulSet: every voter is reachable as
<pod>.<peers>.<namespace>.svc.<clusterDomain>, ready or not. Edges advertise their pod IPs. */}}
{{- define "corvid.peersName" -}}
{{- printf "%s-peers" (include "corvid.fullname" .) -}}
{{- end -}}

{{- define "corvid.peersDomain" -}}
{{- printf "%s.%s.svc.%s" (include "corvid.peersName" .) .Release.Namespace .Values.clusterDomain -}}
{{- end -}}

{{- define "corvid.redisName" -}}
{{- printf "%s-redis" (include "corvid.fullname" .) -}}
{{- end -}}

{{- define "corvid.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "corvid.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "corvid.clientTlsSecret" -}}
{{- if .Values.xmpp.tls.existingSecret -}}
{{- .Values.xmpp.tls.existingSecret -}}
{{- else if .Values.xmpp.tls.certManager.enabled -}}
{{- printf "%s-tls" (include "corvid.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "corvid.clusterTlsSecret" -}}
{{- if .Values.cluster.tls.existingSecret -}}
{{- .Values.cluster.tls.existingSecret -}}
{{- else -}}
{{- printf "%s-cluster-tls" (include "corvid.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* The one DNS name every node's certificate is checked against when mutual TLS is on
(cluster.tls.server_name): cluster.tls.serverName, else the peers Service's own name. */}}
{{- define "corvid.clusterServerName" -}}
{{- default (include "corvid.peersDomain" .) .Values.cluster.tls.serverName -}}
{{- end -}}

{{/* Labels. */}}
{{- define "corvid.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "corvid.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: corvid
{{- end -}}

{{- define "corvid.selectorLabels" -}}
app.kubernetes.io/name: {{ include "corvid.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Image reference: repository:tag, or repository@digest when a digest is given. */}}
{{- define "corvid.imageRef" -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository (toString (.image.tag | default .appVersion)) -}}
{{- end -}}
{{- end -}}

{{- define "corvid.image" -}}
{{- include "corvid.imageRef" (dict "image" .Values.image "appVersion" .Chart.AppVersion) -}}
{{- end -}}

{{/* The registry voters as "id=host:port", ids 1..replicas from the ordinals. */}}
{{- define "corvid.members" -}}
{{- $out := list -}}
{{- $replicas := 1 -}}
{{- if .Values.cluster.enabled -}}{{- $replicas = int .Values.registry.replicas -}}{{- end -}}
{{- range $i := until $replicas -}}
{{- $out = append $out (printf "%d=%s-%d.%s:%d" (add1 $i) (include "corvid.registryName" $) $i (include "corvid.peersDomain" $) (int $.Values.cluster.grpcPort)) -}}
{{- end -}}
{{- join "," $out -}}
{{- end -}}

{{/* Checks on combinations of values the schema cannot express. */}}
{{- define "corvid.validate" -}}
{{- if and .Values.cluster.enabled (ne .Values.storage.backend "redis") -}}
{{- fail "storage.backend must be redis when cluster.enabled is true: every node shares one store" -}}
{{- end -}}
{{- if eq .Values.storage.backend "redis" -}}
{{- $sources := 0 -}}
{{- if .Values.redis.url -}}{{- $sources = add1 $sources -}}{{- end -}}
{{- if .Values.redis.existingSecret -}}{{- $sources = add1 $sources -}}{{- end -}}
{{- if .Values.redis.internal.enabled -}}{{- $sources = add1 $sources -}}{{- end -}}
{{- if ne $sources 1 -}}
{{- fail "storage.backend is redis: set exactly one of redis.url, redis.existingSecret and redis.internal.enabled" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.cluster.tls.enabled (not .Values.cluster.tls.existingSecret) (not .Values.cluster.tls.certManager.enabled) -}}
{{- fail "cluster.tls.enabled needs cluster.tls.existingSecret or cluster.tls.certManager.enabled" -}}
{{- end -}}
{{- if and .Values.cluster.tls.certManager.enabled (not .Values.cluster.tls.certManager.issuerRef.name) -}}
{{- fail "cluster.tls.certManager.enabled needs cluster.tls.certManager.issuerRef.name" -}}
{{- end -}}
{{- if and .Values.xmpp.tls.certManager.enabled (not .Values.xmpp.tls.certManager.issuerRef.name) -}}
{{- fail "xmpp.tls.certManager.enabled needs xmpp.tls.certManager.issuerRef.name" -}}
{{- end -}}
{{- if and .Values.xmpp.tls.certManager.enabled .Values.xmpp.tls.existingSecret -}}
{{- fail "set xmpp.tls.existingSecret or xmpp.tls.certManager.enabled, not both" -}}
{{- end -}}
{{- if ge (int .Values.cluster.renewEveryMs) (int .Values.cluster.leaseTtlMs) -}}
{{- fail "cluster.renewEveryMs must be below cluster.leaseTtlMs" -}}
{{- end -}}
{{- if and .Values.edge.drain.enabled (le (int .Values.edge.terminationGracePeriodSeconds) (add (int .Values.edge.drain.graceSeconds) 5)) -}}
{{- fail "edge.terminationGracePeriodSeconds must exceed edge.drain.graceSeconds by more than 5 s (the preStop drain waits that long)" -}}
{{- end -}}
{{- if and .Values.edge.autoscaling.enabled (lt (int .Values.edge.autoscaling.maxReplicas) (int .Values.edge.autoscaling.minReplicas)) -}}
{{- fail "edge.autoscaling.maxReplicas must be at least minReplicas" -}}
{{- end -}}
{{- if and .Values.edge.autoscaling.enabled (not .Values.edge.autoscaling.targetCPUUtilizationPercentage) (not .Values.edge.autoscaling.targetMemoryUtilizationPercentage) -}}
{{- fail "edge.autoscaling needs targetCPUUtilizationPercentage or targetMemoryUtilizationPercentage" -}}
{{- end -}}
{{- $zero := list "0" "0%" -}}
{{- if and (has (toString .Values.edge.rollingUpdate.maxSurge) $zero) (has (toString .Values.edge.rollingUpdate.maxUnavailable) $zero) -}}
{{- fail "edge.rollingUpdate: maxSurge and maxUnavailable cannot both be 0" -}}
{{- end -}}
{{- end -}}

{{/* Pod-level pieces shared by every Corvid pod. Call with (dict "root" $ "role" "registry"|"edge"|"combined" "values" <registry or edge values>). */}}
{{- define "corvid.podSpec" -}}
{{- $root := .root -}}
{{- $v := .values -}}
{{- $role := .role -}}
serviceAccountName: {{ include "corvid.serviceAccountName" $root }}
automountServiceAccountToken: false
enableServiceLinks: false
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
affinity:
{{- if $v.affinity }}
  {{- toYaml $v.affinity | nindent 2 }}
{{- else }}
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- include "corvid.selectorLabels" $root | nindent 14 }}
              app.kubernetes.io/component: {{ $role }}
{{- end }}
containers:
  - name: corvid
    image: {{ include "corvid.image" $root }}
    imagePullPolicy: {{ $root.Values.image.pullPolicy }}
    command: ["/usr/bin/tini", "--", "/bin/sh", "/etc/corvid/scripts/corvid.sh", "serve"]
    env:
      - name: POD_NAME
        valueFrom:
          fieldRef:
            fieldPath: metadata.name
      - name: POD_NAMESPACE
        valueFrom:
          fieldRef:
            fieldPath: metadata.namespace
      {{- if eq $role "edge" }}
      # An edge has no stable name or ordinal: it picks its node id at start (0) and is
      # reached at its pod IP (node-env.sh builds CORVID__CLUSTER__ADVERTISE from it).
      - name: POD_IP
        valueFrom:
          fieldRef:
            fieldPath: status.podIP
      - name: CORVID__CLUSTER__NODE_ID
        value: "0"
      {{- else }}
      # Voters' ids are 1 + the StatefulSet ordinal (node-env.sh).
      - name: CORVID_ID_OFFSET
        value: "1"
      {{- end }}
      - name: CORVID__CLUSTER__ROLE
        value: {{ $role | quote }}
      {{- if eq $role "registry" }}
      # A voter serves no clients.
      - name: CORVID__C2S__STARTTLS_LISTEN
        value: ""
      - name: CORVID__C2S__DIRECT_TLS_LISTEN
        value: ""
      {{- end }}
      {{- if eq $role "edge" }}
      - name: CORVID_DRAIN_GRACE_SECS
        value: {{ $root.Values.edge.drain.graceSeconds | quote }}
      {{- end }}
      {{- if and (eq $root.Values.storage.backend "redis") $root.Values.redis.existingSecret }}
      # Read by node-env.sh into CORVID__STORAGE__REDIS__URL (a file, not an env from the Secret).
      - name: CORVID_REDIS_URL_FILE
        value: /etc/corvid/redis/{{ $root.Values.redis.existingSecretKey }}
      {{- end }}
      {{- with $root.Values.extraEnv }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    ports:
      {{- if ne $role "registry" }}
      - name: xmpp-starttls
        containerPort: 5222
        protocol: TCP
      - name: xmpp-tls
        containerPort: 5223
        protocol: TCP
      {{- end }}
      {{- if $root.Values.cluster.enabled }}
      - name: grpc
        containerPort: {{ $root.Values.cluster.grpcPort }}
        protocol: TCP
      {{- end }}
      - name: admin
        containerPort: {{ $root.Values.admin.port }}
        protocol: TCP
    startupProbe:
      httpGet:
        path: /healthz
        port: admin
      periodSeconds: 5
      failureThreshold: {{ $root.Values.probes.startupFailureThreshold }}
    livenessProbe:
      httpGet:
        path: /healthz
        port: admin
      periodSeconds: {{ $root.Values.probes.livenessPeriodSeconds }}
      timeoutSeconds: 3
      failureThreshold: 3
    readinessProbe:
      httpGet:
        path: /readyz
        port: admin
      periodSeconds: {{ $root.Values.probes.readinessPeriodSeconds }}
      timeoutSeconds: 3
      failureThreshold: 2
    {{- if and (eq $role "edge") $root.Values.edge.drain.enabled }}
    lifecycle:
      preStop:
        exec:
          command: ["/bin/sh", "/etc/corvid/scripts/drain.sh"]
    {{- end }}
    resources:
      {{- toYaml $v.resources | nindent 6 }}
    securityContext:
      {{- toYaml $root.Values.securityContext | nindent 6 }}
    volumeMounts:
      - name: config
        mountPath: /etc/corvid/corvid.toml
        subPath: corvid.toml
        readOnly: true
      - name: config
        mountPath: /etc/corvid/scripts
        readOnly: true
      - name: data
        mountPath: /var/lib/corvid
      - name: tmp
        mountPath: /tmp
      {{- if and (ne $role "registry") (include "corvid.clientTlsSecret" $root) }}
      - name: client-tls
        mountPath: /etc/corvid/tls
        readOnly: true
      {{- end }}
      {{- if and $root.Values.cluster.enabled $root.Values.cluster.tls.enabled }}
      - name: cluster-tls
        mountPath: /etc/corvid/cluster-tls
        readOnly: true
      {{- end }}
      {{- if and (eq $root.Values.storage.backend "redis") $root.Values.redis.existingSecret }}
      - name: redis-url
        mountPath: /etc/corvid/redis
        readOnly: true
      {{- end }}
volumes:
  - name: config
    configMap:
      name: {{ include "corvid.fullname" $root }}
  - name: tmp
    emptyDir:
      sizeLimit: 64Mi
  {{- if eq $role "edge" }}
  # An edge keeps no durable state: its learner log is wiped at every start.
  - name: data
    emptyDir:
      sizeLimit: 1Gi
  {{- end }}
  {{- if and (ne $role "registry") (include "corvid.clientTlsSecret" $root) }}
  - name: client-tls
    secret:
      secretName: {{ include "corvid.clientTlsSecret" $root }}
      defaultMode: 0440
  {{- end }}
  {{- if and $root.Values.cluster.enabled $root.Values.cluster.tls.enabled }}
  - name: cluster-tls
    secret:
      secretName: {{ include "corvid.clusterTlsSecret" $root }}
      defaultMode: 0440
  {{- end }}
  {{- if and (eq $root.Values.storage.backend "redis") $root.Values.redis.existingSecret }}
  - name: redis-url
    secret:
      secretName: {{ $root.Values.redis.existingSecret }}
      defaultMode: 0440
      items:
        - key: {{ $root.Values.redis.existingSecretKey }}
          path: {{ $root.Values.redis.existingSecretKey }}
  {{- end }}
{{- end -}}
