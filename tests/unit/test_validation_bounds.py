"""Every field is held to the API's own bounds, and every string to what the kernel takes.

Each case is one member of a class the daemon once crashed on (a NUL in ``args``,
``periodSeconds: 1e309``, ``cpu: "1e1000000"``) or ran wrongly (``runAsUser: 4294967295`` as
root); the fuzz test (test_validation_fuzz.py) looks for the members not listed here.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from minikubelet.api.env import MAX_ARG_CHARS, MAX_EXEC_CHARS, expand, resolve_env
from minikubelet.api.errors import ContainerConfigError, ManifestError
from minikubelet.api.model import Container, ObjectMeta, PodSpec
from minikubelet.api.resources import qos_class, resource_config_for_pod
from minikubelet.api.validation import MAX_REPORTED, decode_pod

SOURCE = "manifests/web.yaml"


def _pod(spec: str) -> bytes:
    body = textwrap.indent(textwrap.dedent(spec).strip("\n"), "  ")
    return f"apiVersion: v1\nkind: Pod\nmetadata: {{name: web}}\nspec:\n{body}\n".encode()


def _errors(raw: bytes) -> list[str]:
    with pytest.raises(ManifestError) as info:
        decode_pod(raw, source=SOURCE)
    return [line.removeprefix(f"{SOURCE}: ") for line in info.value.lines()]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("periodSeconds", "1.0e+309", "Invalid value: inf: must be an integer"),
        ("periodSeconds", ".nan", "Invalid value: nan: must be an integer"),
        ("periodSeconds", "10.0", "Invalid value: 10.0: must be an integer"),
        (
            "periodSeconds",
            "2147483648",
            "Invalid value: 2147483648: must be a 32-bit integer (between -2147483648 and "
            "2147483647, inclusive)",
        ),
        ("timeoutSeconds", "-2147483649", "must be a 32-bit integer"),
        ("terminationGracePeriodSeconds", str(2**63), "must be a 64-bit integer"),
        ("periodSeconds", "9" * 100, 'Invalid value: "999999999'),
    ],
)
def test_probe_numbers_must_be_integers_of_their_go_width(field, value, message):
    lines = _errors(
        _pod(
            f"""
            containers:
            - name: web
              livenessProbe: {{exec: {{command: ["true"]}}, {field}: {value}}}
            """
        )
    )
    assert len(lines) == 1
    assert lines[0].startswith(f"spec.containers[0].livenessProbe.{field}: ")
    assert message in lines[0]


def test_a_port_number_too_large_for_int32_is_one_error_even_where_a_name_may_stand():
    lines = _errors(
        _pod(
            """
            containers:
            - name: web
              ports: [{containerPort: 4294967296}]
              readinessProbe: {httpGet: {port: 4294967376}}
            """
        )
    )
    assert lines == [
        "spec.containers[0].ports[0].containerPort: Invalid value: 4294967296: must be a 32-bit "
        "integer (between -2147483648 and 2147483647, inclusive)",
        "spec.containers[0].readinessProbe.httpGet.port: Invalid value: 4294967376: must be a "
        "32-bit integer (between -2147483648 and 2147483647, inclusive)",
    ]


def test_user_and_group_ids_must_fit_in_31_bits():
    """4294967295 is -1 to a 32-bit uid_t: run as root once, when runAsNonRoot was true."""
    lines = _errors(
        _pod(
            """
            securityContext:
              runAsUser: 4294967295
              runAsGroup: 2147483648
              fsGroup: -1
              supplementalGroups: [0, 4294967295]
            containers:
            - name: web
              securityContext: {runAsUser: 4294967295, runAsNonRoot: true}
            """
        )
    )
    between = "must be between 0 and 2147483647, inclusive"
    assert lines == [
        f"spec.containers[0].securityContext.runAsUser: Invalid value: 4294967295: {between}",
        f"spec.securityContext.runAsUser: Invalid value: 4294967295: {between}",
        f"spec.securityContext.runAsGroup: Invalid value: 2147483648: {between}",
        f"spec.securityContext.fsGroup: Invalid value: -1: {between}",
        f"spec.securityContext.supplementalGroups[1]: Invalid value: 4294967295: {between}",
    ]


def test_active_deadline_and_node_name_are_checked_though_not_acted_on():
    lines = _errors(
        _pod(
            """
            activeDeadlineSeconds: 0
            nodeName: Not_A_Node
            priority: 2147483648
            containers: [{name: web}]
            """
        )
    )
    assert lines == [
        "spec.priority: Invalid value: 2147483648: must be a 32-bit integer (between "
        "-2147483648 and 2147483647, inclusive)"
    ]
    lines = _errors(
        _pod("activeDeadlineSeconds: 0\nnodeName: Not_A_Node\ncontainers: [{name: web}]")
    )
    assert lines[0] == (
        "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive"
    )
    assert lines[1].startswith('spec.nodeName: Invalid value: "Not_A_Node": a lowercase RFC 1123')


@pytest.mark.parametrize("amount", ["1e1000000", "-1e1000000", "99999999999999999999Ei", "9e18"])
def test_absurd_quantities_are_capped_so_resource_math_never_overflows(amount):
    decoded = decode_pod(
        _pod(
            f"""
            containers:
            - name: web
              resources:
                limits: {{cpu: "{amount.lstrip("-")}", memory: "{amount.lstrip("-")}"}}
            - name: side
              resources:
                limits: {{cpu: "{amount.lstrip("-")}", memory: "{amount.lstrip("-")}"}}
            """
        ),
        source=SOURCE,
    )
    spec = decoded.pod.spec
    assert qos_class(spec).value == "Guaranteed"
    config = resource_config_for_pod(spec)
    assert config.memory_limit is not None and config.memory_limit <= 2 * (2**63 - 1)


def test_a_negative_absurd_quantity_is_still_negative():
    lines = _errors(_pod('containers: [{name: web, resources: {limits: {cpu: "-1e1000000"}}}]'))
    assert lines == [
        'spec.containers[0].resources.limits[cpu]: Invalid value: "-9223372036854775807": '
        "must be greater than or equal to 0"
    ]


def test_a_quantity_longer_than_any_real_one_is_refused():
    lines = _errors(
        _pod(f'containers: [{{name: web, resources: {{limits: {{cpu: "{"1" * 65}"}}}}}}]')
    )
    assert lines == [
        f'spec.containers[0].resources.limits[cpu]: Invalid value: "{"1" * 65}": quantities may '
        "not be more than 64 characters"
    ]


def test_nul_in_any_string_the_kernel_would_get_is_refused_with_its_path():
    lines = _errors(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "web", "annotations": {"a": "x\x00"}},
                "spec": {
                    "volumes": [{"name": "v", "hostPath": {"path": "/srv/\x00"}}],
                    "containers": [
                        {
                            "name": "web",
                            "command": ["sh\x00"],
                            "args": ["-c", "sleep 1\x00"],
                            "workingDir": "/\x00",
                            "env": [{"name": "A", "value": "\x00"}],
                            "volumeMounts": [{"name": "v", "mountPath": "/m\x00"}],
                            "livenessProbe": {"exec": {"command": ["\x00"]}},
                        }
                    ],
                },
            }
        ).encode()
    )
    nul = "must not contain a NUL character"
    paths = [line.split(": Invalid value: ")[0] for line in lines if line.endswith(nul)]
    assert paths == [
        "metadata.annotations[a]",
        "spec.volumes[0].hostPath.path",
        "spec.containers[0].command[0]",
        "spec.containers[0].args[1]",
        "spec.containers[0].workingDir",
        "spec.containers[0].env[0].value",
        "spec.containers[0].volumeMounts[0].mountPath",
        "spec.containers[0].livenessProbe.exec.command[0]",
    ]


def test_arguments_and_env_must_fit_execve_once_expanded():
    too_long = "x" * (MAX_ARG_CHARS + 1)
    lines = _errors(
        _pod(
            f"""
            containers:
            - name: web
              command: ["{too_long}"]
            - name: bomb
              env:
              - {{name: A, value: "{"a" * 60_000}"}}
              - {{name: B, value: "$(A)$(A)$(A)"}}
              command: ["true"]
            - name: probe
              env: [{{name: A, value: "{"a" * 60_000}"}}]
              livenessProbe: {{exec: {{command: ["echo", "$(A)$(A)$(A)"]}}}}
            """
        )
    )
    limits = (
        f" (one argument or NAME=value may hold {MAX_ARG_CHARS}, the environment and the "
        f"arguments together {MAX_EXEC_CHARS})"
    )
    assert lines == [
        f"spec.containers[0].command[0]: Too long: expands to more than {MAX_ARG_CHARS} "
        f"characters{limits}",
        "spec.containers[1].env[1].value: Too long: expands to more than "
        f"{MAX_ARG_CHARS - 2} characters{limits}",
        "spec.containers[2].livenessProbe.exec.command[1]: Too long: expands to more than "
        f"{MAX_ARG_CHARS} characters{limits}",
    ]


def test_an_environment_that_doubles_at_every_variable_stops_at_the_kernel_limit():
    """B=$(A)$(A), C=$(B)$(B), ... would need 2^30 characters at the 30th variable."""
    env = [{"name": "V0", "value": "x" * 1000}]
    env += [{"name": f"V{i}", "value": f"$(V{i - 1})$(V{i - 1})"} for i in range(1, 30)]
    container = Container.model_validate({"name": "web", "env": env})
    with pytest.raises(ContainerConfigError, match="env 'V8': expands to more than"):
        resolve_env(
            pod_metadata=ObjectMeta(name="web"),
            spec=PodSpec(containers=[container]),
            container=container,
            node_name="n",
            host_ip="127.0.0.1",
            pod_ip="127.0.0.1",
        )


def test_expansion_is_linear_in_unterminated_references():
    text = "$(" * 60_000
    assert expand(text, {}) == text


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("workingDir", "/" + "d" * 4095, "spec.containers[0].workingDir: Too long: may not be "),
        ("image", " nginx", 'spec.containers[0].image: Invalid value: " nginx": must not have'),
        (
            "ports",
            [{"containerPort": 80, "hostIP": "localhost"}],
            'spec.containers[0].ports[0].hostIP: Invalid value: "localhost": must be a valid IP',
        ),
        (
            "readinessProbe",
            {"httpGet": {"port": 80, "httpHeaders": [{"name": "X", "value": "a\r\nHost: evil"}]}},
            "spec.containers[0].readinessProbe.httpGet.httpHeaders: Invalid value: "
            '"a\\r\\nHost: evil": a valid HTTP header value must not contain control characters',
        ),
        (
            "volumeMounts",
            [{"name": "v", "mountPath": "/" + "m" * 5000}],
            "spec.containers[0].volumeMounts[0].mountPath: Too long: may not be more than 4095",
        ),
    ],
)
def test_strings_are_held_to_what_their_use_takes(field, value, message):
    doc = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web"},
        "spec": {
            "volumes": [{"name": "v", "emptyDir": {}}],
            "containers": [{"name": "web", field: value}],
        },
    }
    lines = _errors(json.dumps(doc).encode())
    assert any(line.startswith(message) for line in lines), lines


def test_a_relative_host_path_is_refused():
    lines = _errors(
        _pod("volumes: [{name: v, hostPath: {path: srv/data}}]\ncontainers: [{name: web}]")
    )
    assert lines == [
        'spec.volumes[0].hostPath.path: Invalid value: "srv/data": must be an absolute path'
    ]


def test_annotations_may_not_exceed_256_kib_in_all():
    annotations = {f"k{i}": "v" * 1000 for i in range(300)}
    doc = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "annotations": annotations},
        "spec": {"containers": [{"name": "web"}]},
    }
    assert _errors(json.dumps(doc).encode()) == [
        "metadata.annotations: Too long: may not be more than 262144 bytes"
    ]


def test_a_manifest_with_thousands_of_errors_lists_the_first_hundred_and_counts_the_rest():
    env = [{"name": f"{i}bad"} for i in range(500)]
    doc = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web"},
        "spec": {"containers": [{"name": "web", "env": env}]},
    }
    lines = _errors(json.dumps(doc).encode())
    assert len(lines) == MAX_REPORTED + 1
    assert lines[-1] == f"Too many: {500 - MAX_REPORTED} more errors not shown"


def test_a_long_bad_value_is_shown_by_its_start_and_length():
    (line,) = _errors(_pod(f'containers: [{{name: web, imagePullPolicy: "{"x" * 5000}"}}]'))
    assert line.startswith('spec.containers[0].imagePullPolicy: Unsupported value: "xxxx')
    assert '..." (5000 characters): supported values' in line
    assert len(line) < 400
