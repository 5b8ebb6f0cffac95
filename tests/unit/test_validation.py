"""Manifests decode into defaulted Pods, or fail with every problem in Kubernetes' words."""

from __future__ import annotations

import json
import textwrap

import pytest

from minikubelet.api.errors import ErrorType, FieldError, ManifestError
from minikubelet.api.validation import decode_pod, image_tag

SOURCE = "manifests/web.yaml"

# The seed notes' manifests (../shared/seed/k8s-pod-notes.txt), indentation restored.
SEED_MANIFESTS = {
    "exec-liveness": """
        apiVersion: v1
        kind: Pod
        metadata:
          name: exec-liveness
        spec:
          containers:
          - name: liveness
            image: docker.io/library/rockylinux:9.2
            args:
            - /bin/sh
            - -c
            - "dnf install -y coreutiles && touch /tmp/healthy && sleep 15 && \\
              rm -f /tmp/healthy && sleep 300"
            livenessProbe:
              exec:
                command:
                - cat
                - /tmp/healthy
              periodSeconds: 3
              initialDelaySeconds: 30
              timeoutSeconds: 1
              successThreshold: 1
              failureThreshold: 3
    """,
    "http-liveness": """
        apiVersion: v1
        kind: Pod
        metadata:
          name: http-liveness
        spec:
          containers:
          - name: liveness
            image: registry.k8s.io/e2e-test-images/agnhost:2.40
            args:
            - liveness
            livenessProbe:
              httpGet:
                path: /healthz
                port: 8080
                httpHeaders:
                - name: Custom-Header
                  value: Awesome
              periodSeconds: 3
    """,
    "tcp-liveness": """
        apiVersion: v1
        kind: Pod
        metadata:
          name: tcp-liveness
        spec:
          containers:
          - name: goproxy
            image: registry.k8s.io/goproxy:0.1
            ports:
            - containerPort: 8080
            readinessProbe:
              tcpSocket:
                port: 8080
              initialDelaySeconds: 15
              periodSeconds: 10
            livenessProbe:
              tcpSocket:
                port: 8081
              initialDelaySeconds: 15
              timeoutSeconds: 1
              periodSeconds: 10
              successThreshold: 1
              failureThreshold: 3
    """,
    "nginx-pod-resource": """
        apiVersion: v1
        kind: Pod
        metadata:
          name: nginx-pod-resource
        spec:
          containers:
          - name: nginx-container
            image: nginx:1.14
            ports:
            - containerPort: 80
              protocol: TCP
            resources:
              requests:
                cpu: 200m
                memory: 250Mi
              limits:
                cpu: 1
                memory: 500Mi
    """,
    "sidecar": """
        apiVersion: v1
        kind: Pod
        metadata:
          name: sidecar
        spec:
          volumes:
          - name: sharedlogs
            emptyDir: {}
          containers:
          - name: app-container
            image: alpine
            command: ["/bin/sh"]
            args: ["-c", "while true; do date >> /var/log/app.log; sleep 5; done"]
            volumeMounts:
            - name: sharedlogs
              mountPath: /var/log
          - name: sidecar-container
            image: nginx:1.14
            ports:
            - containerPort: 80
            volumeMounts:
            - name: sharedlogs
              mountPath: /usr/share/nginx/html
    """,
    "adapter": """
        apiVersion: v1
        kind: Pod
        metadata:
          name: adapter
        spec:
          volumes:
          - name: sharedlogs
            emptyDir: {}
          containers:
          - name: app-container
            image: alpine
            command: ["/bin/sh"]
            args: ["-c", "while true; do date > /var/log/top.txt && \\
              top -n 1 -b >> /var/log/top.txt; sleep 5; done"]
            volumeMounts:
            - name: sharedlogs
              mountPath: /var/log
          - name: adapter-container
            image: alpine
            command: ["/bin/sh"]
            args: ["-c", "while true; do (echo '<pre>' > /var/log/status.html) && \\
              (cat /var/log/top.txt | head -1 >> /var/log/status.html) && \\
              (echo '</pre>' >> /var/log/status.html); sleep 5; done"]
            volumeMounts:
            - name: sharedlogs
              mountPath: /var/log
          - name: sidecar-container
            image: nginx:1.14
            ports:
            - containerPort: 80
            volumeMounts:
            - name: sharedlogs
              mountPath: /usr/share/nginx/html
    """,
}


def _decode(manifest: str):
    return decode_pod(textwrap.dedent(manifest).encode(), source=SOURCE)


def _errors(manifest: str) -> list[str]:
    with pytest.raises(ManifestError) as info:
        _decode(manifest)
    assert info.value.source == SOURCE
    return info.value.lines()


def _pod(spec: str, *, metadata: str = "name: web") -> str:
    """A manifest around a spec given as YAML at the spec's indentation."""
    body = textwrap.indent(textwrap.dedent(spec).strip("\n"), "  ")
    return f"apiVersion: v1\nkind: Pod\nmetadata: {{{metadata}}}\nspec:\n{body}\n"


@pytest.mark.parametrize("name", sorted(SEED_MANIFESTS))
def test_seed_manifests_decode_cleanly(name):
    decoded = _decode(SEED_MANIFESTS[name])
    assert decoded.pod.metadata.name == name
    assert decoded.warnings == ()


def test_design_example_error_reads_exactly_as_documented():
    lines = _errors(
        _pod(
            """
            containers:
            - name: web
              livenessProbe:
                httpGet: {port: 8080}
                periodSeconds: 0
            """
        )
    )
    assert lines == [
        "manifests/web.yaml: spec.containers[0].livenessProbe.periodSeconds: "
        "Invalid value: 0: must be greater than or equal to 1"
    ]


def test_unknown_field_names_its_object_and_suggests_the_real_field():
    lines = _errors(
        _pod(
            """
            containers:
            - name: web
              livenessProbe:
                exec: {command: ["true"]}
                periodSecond: 3
              imagePullPolicie: Always
            """
        )
    )
    assert lines == [
        'manifests/web.yaml: spec.containers[0].livenessProbe: unknown field "periodSecond", '
        'did you mean "periodSeconds"?',
        'manifests/web.yaml: spec.containers[0]: unknown field "imagePullPolicie", '
        'did you mean "imagePullPolicy"?',
    ]


def test_unknown_field_far_from_any_real_one_has_no_suggestion():
    lines = _errors(_pod("containers: [{name: web, frobnicate: 1}]"))
    assert lines == ['manifests/web.yaml: spec.containers[0]: unknown field "frobnicate"']


def test_schema_errors_are_all_reported_with_k8s_paths_and_wording():
    lines = _errors(
        _pod(
            """
            restartPolicy: Sometimes
            containers:
            - name: web
              livenessProbe: {tcpSocket: {port: [80]}}
              command: sh
            - image: nginx
            """
        )
    )
    assert set(lines) == {
        'manifests/web.yaml: spec.restartPolicy: Unsupported value: "Sometimes": '
        'supported values: "Always", "OnFailure", "Never"',
        "manifests/web.yaml: spec.containers[0].livenessProbe.tcpSocket.port: "
        "Invalid value: [80]: must be an integer or a string",
        'manifests/web.yaml: spec.containers[0].command: Invalid value: "sh": must be a list',
        "manifests/web.yaml: spec.containers[1].name: Required value",
    }
    assert len(lines) == 4


def test_range_and_cross_field_errors_are_reported_together():
    lines = _errors(
        _pod(
            """
            terminationGracePeriodSeconds: -1
            securityContext: {runAsUser: -1}
            containers:
            - name: web
              ports: [{containerPort: 70000, hostPort: -1}]
              volumeMounts: [{name: missing, mountPath: /m}]
              securityContext: {runAsGroup: -2}
              livenessProbe:
                grpc: {port: 0}
                initialDelaySeconds: -1
                periodSeconds: 0
                successThreshold: 0
              readinessProbe:
                exec: {command: ["true"]}
                failureThreshold: 0
                terminationGracePeriodSeconds: 0
              lifecycle: {preStop: {sleep: {seconds: -5}}}
            - name: web
            """
        )
    )
    prefix = "manifests/web.yaml: "
    ctr = "spec.containers[0]"
    expected = [
        f"{ctr}.ports[0].containerPort: Invalid value: 70000: "
        "must be between 1 and 65535, inclusive",
        f"{ctr}.ports[0].hostPort: Invalid value: -1: must be between 1 and 65535, inclusive",
        f'{ctr}.volumeMounts[0].name: Not found: "missing"',
        f"{ctr}.securityContext.runAsGroup: Invalid value: -2: "
        "must be between 0 and 2147483647, inclusive",
        f"{ctr}.lifecycle.preStop.sleep.seconds: Invalid value: -5: "
        "must be greater than or equal to 0",
        f"{ctr}.livenessProbe.grpc.port: Invalid value: 0: must be between 1 and 65535, inclusive",
        f"{ctr}.livenessProbe.initialDelaySeconds: Invalid value: -1: "
        "must be greater than or equal to 0",
        f"{ctr}.livenessProbe.periodSeconds: Invalid value: 0: must be greater than or equal to 1",
        # one error for successThreshold 0 on a liveness probe, not also "must be 1"
        f"{ctr}.livenessProbe.successThreshold: Invalid value: 0: "
        "must be greater than or equal to 1",
        f"{ctr}.readinessProbe.failureThreshold: Invalid value: 0: "
        "must be greater than or equal to 1",
        f"{ctr}.readinessProbe.terminationGracePeriodSeconds: Invalid value: 0: "
        "must be greater than or equal to 1",
        f"{ctr}.readinessProbe.terminationGracePeriodSeconds: Invalid value: 0: "
        "must not be set for readinessProbes",
        'spec.containers[1].name: Duplicate value: "web"',
        "spec.terminationGracePeriodSeconds: Invalid value: -1: must be greater than or equal to 0",
        "spec.securityContext.runAsUser: Invalid value: -1: must be between 0 and 2147483647, "
        "inclusive",
    ]
    assert lines == [prefix + e for e in expected]


def test_a_sleep_hook_longer_than_the_grace_period_is_invalid():
    lines = _errors(
        _pod(
            """
            terminationGracePeriodSeconds: 10
            containers:
            - name: web
              lifecycle: {preStop: {sleep: {seconds: 11}}}
            """
        )
    )
    assert lines == [
        "manifests/web.yaml: spec.containers[0].lifecycle.preStop.sleep: Invalid value: 11: "
        "must be non-negative and less than terminationGracePeriodSeconds (10)"
    ]


def test_unknown_fields_and_wrong_types_stop_before_range_and_cross_field_checks():
    """As the API server's strict decoding: a malformed object is refused before validation."""
    lines = _errors(
        _pod(
            """
            containers:
            - name: web
              ports: [{containerPort: 70000, hostPorts: 80}]
              volumeMounts: [{name: missing, mountPath: /m}]
              livenessProbe: {exec: {command: ["true"]}, periodSeconds: "3"}
            """
        )
    )
    assert lines == [
        'manifests/web.yaml: spec.containers[0].ports[0]: unknown field "hostPorts", '
        'did you mean "hostPort"?',
        "manifests/web.yaml: spec.containers[0].livenessProbe.periodSeconds: "
        'Invalid value: "3": must be an integer',
    ]


def test_unknown_fields_alone_do_not_hide_the_other_problems():
    lines = _errors(
        _pod(
            """
            containers:
            - name: web
              ports: [{containerPort: 70000}]
              volumeMounts: [{name: missing, mountPath: /m}]
              livenessProbe: {exec: {command: ["true"]}, periodSecond: 3}
            """
        )
    )
    assert lines == [
        'manifests/web.yaml: spec.containers[0].livenessProbe: unknown field "periodSecond", '
        'did you mean "periodSeconds"?',
        "manifests/web.yaml: spec.containers[0].ports[0].containerPort: Invalid value: 70000: "
        "must be between 1 and 65535, inclusive",
        'manifests/web.yaml: spec.containers[0].volumeMounts[0].name: Not found: "missing"',
    ]


def test_semantic_errors_are_all_reported_at_once():
    lines = _errors(
        _pod(
            """
            volumes:
            - {name: data, emptyDir: {}}
            - {name: data, hostPath: {path: /srv}}
            initContainers:
            - name: setup
              readinessProbe: {exec: {command: ["true"]}}
            containers:
            - name: Web_App
              env:
              - {name: 1ABC, value: x}
              - {name: POD, value: x, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
              ports:
              - {name: http, containerPort: 80}
              - {name: http, containerPort: 81}
              volumeMounts:
              - {name: logs, mountPath: /var/log}
              livenessProbe:
                exec: {command: ["true"]}
                httpGet: {port: 8080}
                successThreshold: 3
              startupProbe: {periodSeconds: 5}
              resources:
                limits: {cpu: 500m}
                requests: {cpu: "1"}
            - name: setup
            """,
            metadata="name: Bad_Name",
        )
    )
    prefix = "manifests/web.yaml: "
    expected = [
        'metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist '
        "of lower case alphanumeric characters, '-' or '.', and must start and end with an "
        "alphanumeric character (e.g. 'example.com', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        'spec.volumes[1].name: Duplicate value: "data"',
        'spec.containers[0].name: Invalid value: "Web_App": a lowercase RFC 1123 label must '
        "consist of lower case alphanumeric characters or '-', and must start and end with an "
        "alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        'spec.containers[0].ports[1].name: Duplicate value: "http"',
        'spec.containers[0].env[0].name: Invalid value: "1ABC": a valid environment variable '
        "name must consist of alphabetic characters, digits, '_', '-', or '.', and must not "
        "start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex "
        "used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')",
        'spec.containers[0].env[1].valueFrom: Invalid value: "": may not be specified when '
        "`value` is not empty",
        'spec.containers[0].volumeMounts[0].name: Not found: "logs"',
        'spec.containers[0].resources.requests: Invalid value: "1": must be less than or equal '
        "to cpu limit of 500m",
        "spec.containers[0].livenessProbe.httpGet: Forbidden: may not specify more than 1 "
        "handler type",
        "spec.containers[0].livenessProbe.successThreshold: Invalid value: 3: must be 1",
        "spec.containers[0].startupProbe: Required value: must specify a handler type",
        'spec.initContainers[0].name: Duplicate value: "setup"',
        "spec.initContainers[0].readinessProbe: Forbidden: may not be set for init containers "
        "without restartPolicy=Always",
    ]
    assert lines == [prefix + e for e in expected]


def test_sidecars_may_have_probes_and_lifecycle():
    decoded = _decode(
        _pod(
            """
            initContainers:
            - name: proxy
              restartPolicy: Always
              startupProbe: {tcpSocket: {port: 15000}}
              readinessProbe: {httpGet: {port: admin, path: /ready}}
              livenessProbe: {exec: {command: ["true"]}}
              lifecycle: {preStop: {sleep: {seconds: 5}}}
              ports: [{name: admin, containerPort: 15000}]
            containers:
            - name: web
            """
        )
    )
    assert decoded.pod.spec.init_containers is not None
    assert decoded.pod.spec.init_containers[0].is_sidecar


def test_static_pods_may_not_reference_api_objects():
    lines = _errors(
        _pod(
            """
            serviceAccountName: builder
            volumes:
            - {name: conf, configMap: {name: web-conf}}
            - {name: creds, secret: {secretName: web}}
            - {name: claim, persistentVolumeClaim: {claimName: data}}
            containers:
            - name: web
              env:
              - {name: TOKEN, valueFrom: {secretKeyRef: {name: web, key: token}}}
              volumeMounts:
              - {name: conf, mountPath: /etc/web}
            """
        )
    )
    prefix = "manifests/web.yaml: "
    assert lines == [
        prefix + "spec.containers[0].env[0].valueFrom.secretKeyRef: Forbidden: static pods may "
        "not reference secrets",
        prefix + "spec.volumes[0].configMap: Forbidden: static pods may not reference configmaps "
        "(via configmap volumes)",
        prefix + "spec.volumes[1].secret: Forbidden: static pods may not reference secrets (via "
        "secret volumes)",
        prefix + "spec.volumes[2].persistentVolumeClaim: Forbidden: static pods may not reference "
        "persistentvolumeclaims",
    ]


def test_service_account_name_is_accepted_with_a_warning():
    decoded = _decode(
        _pod(
            """
            serviceAccountName: builder
            containers: [{name: web}]
            """
        )
    )
    assert decoded.warnings == (
        "spec.serviceAccountName: is accepted but not acted on by minikubelet",
    )


def test_volume_sources_minikubelet_cannot_back_are_unsupported():
    lines = _errors(
        _pod(
            """
            volumes:
            - {name: share, nfs: {server: nas, path: /export}}
            - {name: both, emptyDir: {}, hostPath: {path: /tmp}}
            - {name: none}
            containers: [{name: web}]
            """
        )
    )
    assert lines == [
        'manifests/web.yaml: spec.volumes[0]: Unsupported value: "nfs": supported values: '
        '"emptyDir", "hostPath"',
        "manifests/web.yaml: spec.volumes[1].hostPath: Forbidden: may not specify more than 1 "
        "volume type",
        "manifests/web.yaml: spec.volumes[2]: Required value: must specify a volume type",
    ]


def test_env_field_and_resource_refs_are_checked():
    lines = _errors(
        _pod(
            """
            containers:
            - name: web
              env:
              - {name: A, valueFrom: {fieldRef: {fieldPath: status.phase}}}
              - {name: B, valueFrom: {fieldRef: {fieldPath: spec.bogus}}}
              - {name: C, valueFrom: {resourceFieldRef: {resource: limits.gpu}}}
              - {name: D, valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 2}}}
              - {name: E, valueFrom: {}}
            """
        )
    )
    prefix = "manifests/web.yaml: spec.containers[0].env"
    assert lines == [
        f'{prefix}[0].valueFrom.fieldRef.fieldPath: Unsupported value: "status.phase": '
        'supported values: "metadata.name", "metadata.namespace", "metadata.uid", '
        '"spec.nodeName", "spec.serviceAccountName", "status.hostIP", "status.hostIPs", '
        '"status.podIP", "status.podIPs"',
        f'{prefix}[1].valueFrom.fieldRef.fieldPath: Invalid value: "spec.bogus": error '
        "converting fieldPath: field label not supported: spec.bogus",
        f'{prefix}[2].valueFrom.resourceFieldRef.resource: Unsupported value: "limits.gpu": '
        'supported values: "limits.cpu", "limits.ephemeral-storage", "limits.memory", '
        '"requests.cpu", "requests.ephemeral-storage", "requests.memory"',
        f'{prefix}[3].valueFrom.resourceFieldRef.divisor: Invalid value: "limits.cpu": only '
        "divisor's values 1m and 1 are supported with the cpu resource",
        f'{prefix}[4].valueFrom: Invalid value: "": must specify one of: `fieldRef`, '
        "`resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
    ]


def test_resource_quantities_and_names_are_checked():
    lines = _errors(
        _pod(
            """
            containers:
            - name: web
              resources:
                limits: {cpu: 1 core, memory: -1, gpus: 1}
            """
        )
    )
    prefix = "manifests/web.yaml: spec.containers[0].resources.limits"
    assert lines == [
        f'{prefix}[cpu]: Invalid value: "1 core": quantities must match the regular expression '
        "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        f'{prefix}[gpus]: Invalid value: "gpus": must be a standard resource for containers',
        f'{prefix}[memory]: Invalid value: "-1": must be greater than or equal to 0',
    ]


def test_probe_ports_must_be_numbers_in_range_or_service_names():
    lines = _errors(
        _pod(
            """
            containers:
            - name: web
              livenessProbe: {httpGet: {port: 0}}
              readinessProbe: {tcpSocket: {port: HTTP}}
            """
        )
    )
    assert lines == [
        "manifests/web.yaml: spec.containers[0].livenessProbe.httpGet.port: Invalid value: 0: "
        "must be between 1 and 65535, inclusive",
        "manifests/web.yaml: spec.containers[0].readinessProbe.tcpSocket.port: "
        'Invalid value: "HTTP": must contain only alpha-numeric characters (a-z, 0-9), '
        "and hyphens (-)",
        "manifests/web.yaml: spec.containers[0].readinessProbe.tcpSocket.port: "
        'Invalid value: "HTTP": must contain at least one letter (a-z)',
    ]


def test_regular_containers_may_not_set_restart_policy_and_runtime_class_is_checked():
    lines = _errors(
        _pod(
            """
            runtimeClassName: kata
            containers: [{name: web, restartPolicy: Always}]
            """
        )
    )
    assert lines == [
        "manifests/web.yaml: spec.containers[0].restartPolicy: Forbidden: may not be set for "
        "non-init containers",
        'manifests/web.yaml: spec.runtimeClassName: Unsupported value: "kata": supported values: '
        '"containerd", "podman", "process"',
    ]


def test_missing_name_is_required():
    lines = _errors(_pod("containers: [{name: web}]", metadata="labels: {app: web}"))
    assert lines == [
        "manifests/web.yaml: metadata.name: Required value: name or generateName is required"
    ]


@pytest.mark.parametrize(
    ("manifest", "line"),
    [
        (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n",
            'kind: Invalid value: "Deployment": minikubelet runs Pods only',
        ),
        ("kind: Pod\nmetadata: {name: x}\n", "apiVersion: Required value"),
        ("apiVersion: v1\nkind: Pod\n---\napiVersion: v1\nkind: Pod\n", "found 2 YAML documents"),
        ("- a\n- b\n", "must be a YAML or JSON object"),
        ("", "manifest is empty"),
        ("a: b: c\n", "error parsing YAML: line 1, column 5"),
    ],
)
def test_only_one_v1_pod_per_manifest(manifest, line):
    assert any(line in error for error in _errors(manifest))


def test_json_manifests_decode_too():
    doc = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web"},
        "spec": {"containers": [{"name": "web", "image": "nginx"}]},
    }
    assert _decode(json.dumps(doc)).pod.spec.containers[0].name == "web"


def test_defaults_requests_from_limits_and_pull_policy_from_tag():
    decoded = _decode(
        _pod(
            """
            containers:
            - name: a
              image: nginx
              resources: {limits: {cpu: 500m, memory: 64Mi}, requests: {cpu: 100m}}
            - {name: b, image: "nginx:1.25"}
            - {name: c, image: "nginx:latest"}
            - {name: d, image: "nginx:1.25", imagePullPolicy: Never}
            - {name: e}
            """
        )
    )
    a, b, c, d, e = decoded.pod.spec.containers
    assert a.resources is not None
    assert a.resources.requests == {"cpu": "100m", "memory": "64Mi"}
    assert [x.image_pull_policy for x in (a, b, c, d, e)] == [
        "Always",
        "IfNotPresent",
        "Always",
        "Never",
        None,
    ]


@pytest.mark.parametrize(
    ("image", "tag"),
    [
        ("nginx", "latest"),
        ("nginx:1.25", "1.25"),
        ("localhost:5000/nginx", "latest"),
        ("localhost:5000/nginx:v1", "v1"),
        ("nginx@sha256:abc", ""),
        ("nginx:1@sha256:abc", "1"),
    ],
)
def test_image_tag(image, tag):
    assert image_tag(image) == tag


def test_ignored_fields_become_warnings_and_status_is_dropped():
    decoded = _decode(
        _pod(
            """
            affinity: {}
            tolerations: []
            containers:
            - name: web
              envFrom: [{prefix: X_}]
              securityContext: {privileged: true, runAsUser: 1000}
            """,
            metadata="name: web, creationTimestamp: '2024-01-01T00:00:00Z', "
            "labels: {day: 2024-01-01}",
        )
        + "status: {phase: Running}\n"
    )
    assert decoded.warnings == (
        "spec.containers[0].securityContext.privileged: is accepted but not acted on by "
        "minikubelet",
        "spec.containers[0].envFrom: is accepted but not acted on by minikubelet",
        "spec.affinity: is accepted but not acted on by minikubelet",
        "spec.tolerations: is accepted but not acted on by minikubelet",
    )
    assert decoded.pod.status is None
    assert decoded.pod.metadata.labels == {"day": "2024-01-01"}


def test_field_error_renders_like_k8s_field_error():
    assert str(FieldError(ErrorType.REQUIRED, "spec.containers", "")) == (
        "spec.containers: Required value"
    )
    assert str(FieldError(ErrorType.NOT_FOUND, "a.name", "", "x")) == 'a.name: Not found: "x"'
    assert str(FieldError(ErrorType.FORBIDDEN, "a", "no", "x")) == "a: Forbidden: no"
