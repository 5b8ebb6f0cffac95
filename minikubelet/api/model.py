"""Kubernetes v1 objects, as frozen pydantic models with the API's own (camelCase) field names.

This module owns the shape of everything that crosses minikubelet's outer edges: the Pod a
manifest declares (spec, with Kubernetes' defaults filled in) and the PodStatus, Event and list
objects that the HTTP API serves and the CLI reads back. Python attributes are snake_case; the
wire names are the API's (``livenessProbe``, ``hostIP``) and are the only ones accepted on input.

Spec models are strict and closed (``extra="forbid"``): a typo such as ``periodSecond`` is an
error with its field path, never silently ignored. Real Kubernetes fields that minikubelet does
not act on are declared as opaque JSON (``Ignored``) so that a manifest which runs on a cluster
also loads here; ``api.validation`` reports each of them as a warning. The models say shape
only (fields, types, enum values), where the type of an integer includes Go's width: a
``periodSeconds`` beyond int32 is not an int32, as the API server's decoder says. Ranges such
as ``containerPort`` in 1..65535 or ``periodSeconds`` of at least 1 are checked by
``api.validation``, in the same pass as the rules that span fields, so that a manifest's range
and cross-field errors are reported together. The real fields that take a number or a user ID
are typed even where minikubelet ignores them (``fsGroup``, ``activeDeadlineSeconds``,
``priority``), so that they are validated as the API server would.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, NewType

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, PlainSerializer
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError


def _fits(bits: int) -> Callable[[object], object]:
    """An integer's check against Go's intN, as the API server's decoding makes it: a value
    outside the range is not that type at all."""
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def check(value: object) -> object:
        if isinstance(value, int) and not low <= value <= high:
            raise PydanticCustomError(
                f"int{bits}",
                "must be a {bits}-bit integer (between {low} and {high}, inclusive)",
                {"bits": bits, "low": low, "high": high},
            )
        return value

    return check


Int32 = Annotated[int, AfterValidator(_fits(32))]
"""An int32 field (probe periods and thresholds, ports, priority)."""

Int64 = Annotated[int, AfterValidator(_fits(64))]
"""An int64 field (grace periods, deadlines, user and group IDs)."""

IntOrString = Annotated[int | str, AfterValidator(_fits(32))]
"""A port number or a port name (intstr.IntOrString: its number is an int32)."""

QuantityValue = int | float | str
"""A resource quantity as written (``100m``, ``1.5``, ``64Mi``, ``1e3``); see api.quantity."""

Ignored = JsonValue | None
"""A real Kubernetes field that minikubelet accepts and does not act on (reported as a warning)."""


def format_time(value: datetime) -> str:
    """metav1.Time on the wire: RFC 3339, UTC, whole seconds."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Time = Annotated[datetime, PlainSerializer(format_time, return_type=str, when_used="json")]
"""metav1.Time: RFC 3339 with second precision on the wire."""


def now() -> datetime:
    """The current wall-clock time, as every timestamp in the API is kept (UTC, seconds)."""
    return datetime.now(UTC).replace(microsecond=0)


class Spec(BaseModel):
    """Base for objects read from manifests: closed, strict, frozen."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        strict=True,
        alias_generator=to_camel,
        populate_by_name=False,
        validate_default=False,
    )

    ignored_fields: ClassVar[frozenset[str]] = frozenset()
    """Wire names of the real Kubernetes fields on this object that minikubelet does not use."""


class Record(BaseModel):
    """Base for objects minikubelet produces (status, events): frozen, lenient on input."""

    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        alias_generator=to_camel,
        populate_by_name=True,
    )


# --- metadata ---------------------------------------------------------------------------------


class ObjectMeta(Spec):
    ignored_fields: ClassVar[frozenset[str]] = frozenset(
        {
            "generateName",
            "ownerReferences",
            "finalizers",
            "managedFields",
            "resourceVersion",
            "generation",
            "selfLink",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        }
    )

    name: str | None = None
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    uid: str | None = None
    creation_timestamp: Time | None = None

    generate_name: Ignored = None
    owner_references: Ignored = None
    finalizers: Ignored = None
    managed_fields: Ignored = None
    resource_version: Ignored = None
    generation: Int64 | None = None
    self_link: Ignored = None
    deletion_timestamp: Ignored = None
    deletion_grace_period_seconds: Int64 | None = None


# --- probes and lifecycle -----------------------------------------------------------------------


class ExecAction(Spec):
    command: list[str] | None = None


class HTTPHeader(Spec):
    name: str
    value: str


class HTTPGetAction(Spec):
    path: str = "/"
    port: IntOrString
    host: str | None = None
    scheme: Literal["HTTP", "HTTPS"] = "HTTP"
    http_headers: list[HTTPHeader] | None = None


class TCPSocketAction(Spec):
    port: IntOrString
    host: str | None = None


class GRPCAction(Spec):
    port: Int32
    service: str | None = None


class SleepAction(Spec):
    seconds: Int64


class Probe(Spec):
    exec: ExecAction | None = None
    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    grpc: GRPCAction | None = None
    initial_delay_seconds: Int32 = 0
    timeout_seconds: Int32 = 1
    period_seconds: Int32 = 10
    success_threshold: Int32 = 1
    failure_threshold: Int32 = 3
    termination_grace_period_seconds: Int64 | None = None


class LifecycleHandler(Spec):
    exec: ExecAction | None = None
    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    sleep: SleepAction | None = None


class Lifecycle(Spec):
    ignored_fields: ClassVar[frozenset[str]] = frozenset({"stopSignal"})

    post_start: LifecycleHandler | None = None
    pre_stop: LifecycleHandler | None = None
    stop_signal: Ignored = None


# --- env ----------------------------------------------------------------------------------------


class ObjectFieldSelector(Spec):
    api_version: str = "v1"
    field_path: str


class ResourceFieldSelector(Spec):
    container_name: str | None = None
    resource: str
    divisor: QuantityValue | None = None


class EnvVarSource(Spec):
    ignored_fields: ClassVar[frozenset[str]] = frozenset({"configMapKeyRef", "secretKeyRef"})

    field_ref: ObjectFieldSelector | None = None
    resource_field_ref: ResourceFieldSelector | None = None
    config_map_key_ref: Ignored = None
    secret_key_ref: Ignored = None


class EnvVar(Spec):
    name: str
    value: str | None = None
    value_from: EnvVarSource | None = None


# --- containers ---------------------------------------------------------------------------------


class ContainerPort(Spec):
    name: str | None = None
    container_port: Int32
    host_port: Int32 | None = None
    host_ip: str | None = Field(default=None, alias="hostIP")
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"


class ResourceRequirements(Spec):
    ignored_fields: ClassVar[frozenset[str]] = frozenset({"claims"})

    limits: dict[str, QuantityValue] | None = None
    requests: dict[str, QuantityValue] | None = None
    claims: Ignored = None


class VolumeMount(Spec):
    ignored_fields: ClassVar[frozenset[str]] = frozenset(
        {"mountPropagation", "subPathExpr", "recursiveReadOnly"}
    )

    name: str
    mount_path: str
    read_only: bool | None = None
    sub_path: str | None = None
    mount_propagation: Ignored = None
    sub_path_expr: Ignored = None
    recursive_read_only: Ignored = None


class Capabilities(Spec):
    add: list[str] | None = None
    drop: list[str] | None = None


class SecurityContext(Spec):
    """Container securityContext; runAsUser/runAsGroup/runAsNonRoot are acted on."""

    ignored_fields: ClassVar[frozenset[str]] = frozenset(
        {
            "allowPrivilegeEscalation",
            "appArmorProfile",
            "capabilities",
            "privileged",
            "procMount",
            "readOnlyRootFilesystem",
            "seLinuxOptions",
            "seccompProfile",
            "windowsOptions",
        }
    )

    run_as_user: Int64 | None = None
    run_as_group: Int64 | None = None
    run_as_non_root: bool | None = None
    allow_privilege_escalation: Ignored = None
    app_armor_profile: Ignored = None
    capabilities: Ignored = None
    privileged: Ignored = None
    proc_mount: Ignored = None
    read_only_root_filesystem: Ignored = None
    se_linux_options: Ignored = None
    seccomp_profile: Ignored = None
    windows_options: Ignored = None


class Container(Spec):
    ignored_fields: ClassVar[frozenset[str]] = frozenset(
        {
            "envFrom",
            "resizePolicy",
            "restartPolicyRules",
            "stdin",
            "stdinOnce",
            "tty",
            "volumeDevices",
            "terminationMessagePath",
            "terminationMessagePolicy",
        }
    )

    name: str
    image: str | None = None
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    working_dir: str | None = None
    env: list[EnvVar] | None = None
    ports: list[ContainerPort] | None = None
    resources: ResourceRequirements | None = None
    volume_mounts: list[VolumeMount] | None = None
    liveness_probe: Probe | None = None
    readiness_probe: Probe | None = None
    startup_probe: Probe | None = None
    lifecycle: Lifecycle | None = None
    restart_policy: Literal["Always"] | None = None
    security_context: SecurityContext | None = None
    termination_message_path: str = "/dev/termination-log"
    termination_message_policy: Literal["File", "FallbackToLogsOnError"] = "File"

    env_from: Ignored = None
    resize_policy: Ignored = None
    restart_policy_rules: Ignored = None
    stdin: Ignored = None
    stdin_once: Ignored = None
    tty: Ignored = None
    volume_devices: Ignored = None

    @property
    def is_sidecar(self) -> bool:
        """An init container with restartPolicy Always (KEP-753)."""
        return self.restart_policy == "Always"


# --- volumes ------------------------------------------------------------------------------------


class EmptyDirVolumeSource(Spec):
    medium: Literal["", "Memory"] = ""
    size_limit: QuantityValue | None = None


HostPathType = Literal[
    "",
    "DirectoryOrCreate",
    "Directory",
    "FileOrCreate",
    "File",
    "Socket",
    "CharDevice",
    "BlockDevice",
]


class HostPathVolumeSource(Spec):
    path: str
    type: HostPathType = ""


class Volume(Spec):
    """A pod volume. Only emptyDir and hostPath are backed; the rest are rejected by validation."""

    ignored_fields: ClassVar[frozenset[str]] = frozenset()

    name: str
    empty_dir: EmptyDirVolumeSource | None = None
    host_path: HostPathVolumeSource | None = None
    # Real volume sources that a static pod cannot use here; validation names them.
    config_map: JsonValue | None = None
    secret: JsonValue | None = None
    persistent_volume_claim: JsonValue | None = None
    projected: JsonValue | None = None
    downward_api: JsonValue | None = Field(default=None, alias="downwardAPI")
    nfs: JsonValue | None = None
    csi: JsonValue | None = None
    ephemeral: JsonValue | None = None
    image: JsonValue | None = None


# --- pod ----------------------------------------------------------------------------------------


class PodSecurityContext(Spec):
    ignored_fields: ClassVar[frozenset[str]] = frozenset(
        {
            "fsGroup",
            "fsGroupChangePolicy",
            "supplementalGroups",
            "supplementalGroupsPolicy",
            "sysctls",
            "seLinuxOptions",
            "seccompProfile",
            "appArmorProfile",
            "windowsOptions",
            "seLinuxChangePolicy",
        }
    )

    run_as_user: Int64 | None = None
    run_as_group: Int64 | None = None
    run_as_non_root: bool | None = None
    fs_group: Int64 | None = None
    fs_group_change_policy: Ignored = None
    supplemental_groups: list[Int64] | None = None
    supplemental_groups_policy: Ignored = None
    sysctls: Ignored = None
    se_linux_options: Ignored = None
    seccomp_profile: Ignored = None
    app_armor_profile: Ignored = None
    windows_options: Ignored = None
    se_linux_change_policy: Ignored = None


RestartPolicy = Literal["Always", "OnFailure", "Never"]


class PodSpec(Spec):
    ignored_fields: ClassVar[frozenset[str]] = frozenset(
        {
            "activeDeadlineSeconds",
            "affinity",
            "automountServiceAccountToken",
            "dnsConfig",
            "dnsPolicy",
            "enableServiceLinks",
            "ephemeralContainers",
            "hostAliases",
            "hostIPC",
            "hostNetwork",
            "hostPID",
            "hostUsers",
            "hostname",
            "hostnameOverride",
            "imagePullSecrets",
            "nodeSelector",
            "os",
            "overhead",
            "preemptionPolicy",
            "priority",
            "priorityClassName",
            "readinessGates",
            "resourceClaims",
            "resources",
            "schedulerName",
            "schedulingGates",
            "serviceAccount",
            "serviceAccountName",
            "setHostnameAsFQDN",
            "shareProcessNamespace",
            "subdomain",
            "tolerations",
            "topologySpreadConstraints",
        }
    )

    containers: list[Container]
    init_containers: list[Container] | None = None
    volumes: list[Volume] | None = None
    restart_policy: RestartPolicy = "Always"
    termination_grace_period_seconds: Int64 = 30
    runtime_class_name: str | None = None
    security_context: PodSecurityContext | None = None
    node_name: str | None = None

    active_deadline_seconds: Int64 | None = None
    affinity: Ignored = None
    automount_service_account_token: Ignored = None
    dns_config: Ignored = None
    dns_policy: Ignored = None
    enable_service_links: Ignored = None
    ephemeral_containers: Ignored = None
    host_aliases: Ignored = None
    host_ipc: Ignored = Field(default=None, alias="hostIPC")
    host_network: Ignored = None
    host_pid: Ignored = Field(default=None, alias="hostPID")
    host_users: Ignored = None
    hostname: Ignored = None
    hostname_override: Ignored = None
    image_pull_secrets: Ignored = None
    node_selector: Ignored = None
    os: Ignored = None
    overhead: Ignored = None
    preemption_policy: Ignored = None
    priority: Int32 | None = None
    priority_class_name: Ignored = None
    readiness_gates: Ignored = None
    resource_claims: Ignored = None
    resources: Ignored = None
    scheduler_name: Ignored = None
    scheduling_gates: Ignored = None
    service_account: Ignored = None
    service_account_name: Ignored = None
    set_hostname_as_fqdn: Ignored = Field(default=None, alias="setHostnameAsFQDN")
    share_process_namespace: Ignored = None
    subdomain: Ignored = None
    tolerations: Ignored = None
    topology_spread_constraints: Ignored = None

    def all_containers(self) -> list[Container]:
        """Init containers first, then regular containers, in declared order."""
        return [*(self.init_containers or []), *self.containers]


# --- status -------------------------------------------------------------------------------------


class ContainerStateWaiting(Record):
    reason: str | None = None
    message: str | None = None


class ContainerStateRunning(Record):
    started_at: Time | None = None


class ContainerStateTerminated(Record):
    exit_code: int
    signal: int | None = None
    reason: str | None = None
    message: str | None = None
    started_at: Time | None = None
    finished_at: Time | None = None
    container_id: str | None = Field(default=None, alias="containerID")


class ContainerState(Record):
    waiting: ContainerStateWaiting | None = None
    running: ContainerStateRunning | None = None
    terminated: ContainerStateTerminated | None = None


class ContainerStatus(Record):
    name: str
    state: ContainerState = ContainerState()
    last_state: ContainerState = ContainerState()
    ready: bool = False
    restart_count: int = 0
    image: str = ""
    image_id: str = Field(default="", alias="imageID")
    container_id: str | None = Field(default=None, alias="containerID")
    started: bool | None = None


PodPhase = Literal["Pending", "Running", "Succeeded", "Failed", "Unknown"]
ConditionStatus = Literal["True", "False", "Unknown"]


class PodCondition(Record):
    type: str
    status: ConditionStatus
    last_probe_time: Time | None = None
    last_transition_time: Time | None = None
    reason: str | None = None
    message: str | None = None


class PodIP(Record):
    ip: str


class PodStatus(Record):
    phase: PodPhase = "Pending"
    conditions: list[PodCondition] = []
    message: str | None = None
    reason: str | None = None
    host_ip: str | None = Field(default=None, alias="hostIP")
    host_ips: list[PodIP] | None = Field(default=None, alias="hostIPs")
    pod_ip: str | None = Field(default=None, alias="podIP")
    pod_ips: list[PodIP] | None = Field(default=None, alias="podIPs")
    start_time: Time | None = None
    init_container_statuses: list[ContainerStatus] | None = None
    container_statuses: list[ContainerStatus] | None = None
    qos_class: Literal["Guaranteed", "Burstable", "BestEffort"] | None = None


class Pod(Spec):
    """A Pod as read from a manifest; ``status`` is only ever filled in by minikubelet."""

    api_version: Literal["v1"] = "v1"
    kind: Literal["Pod"] = "Pod"
    metadata: ObjectMeta
    spec: PodSpec
    status: Any = None  # accepted and dropped on input (a `kubectl get -o yaml` copy has one)


class PodView(Record):
    """A Pod as the API serves it: metadata, the defaulted spec, and the live status."""

    api_version: str = "v1"
    kind: str = "Pod"
    metadata: dict[str, JsonValue]
    spec: dict[str, JsonValue]
    status: PodStatus


class ListMeta(Record):
    resource_version: str | None = None


class PodList(Record):
    api_version: str = "v1"
    kind: str = "PodList"
    metadata: ListMeta = ListMeta()
    items: list[PodView] = []


# --- events -------------------------------------------------------------------------------------


class ObjectReference(Record):
    kind: str = "Pod"
    namespace: str | None = None
    name: str | None = None
    uid: str | None = None
    api_version: str | None = "v1"
    field_path: str | None = None


class EventSource(Record):
    component: str = "kubelet"
    host: str | None = None


class EventMeta(Record):
    name: str
    namespace: str = "default"
    uid: str | None = None
    creation_timestamp: Time | None = None


EventType = Literal["Normal", "Warning"]


class Event(Record):
    api_version: str = "v1"
    kind: str = "Event"
    metadata: EventMeta
    involved_object: ObjectReference
    reason: str
    message: str
    type: EventType = "Normal"
    count: int = 1
    first_timestamp: Time | None = None
    last_timestamp: Time | None = None
    source: EventSource = EventSource()
    reporting_component: str = "kubelet"
    reporting_instance: str | None = None


class EventList(Record):
    api_version: str = "v1"
    kind: str = "EventList"
    metadata: ListMeta = ListMeta()
    items: list[Event] = []


def dump(model: BaseModel) -> dict[str, Any]:
    """The wire form of any model here: API field names, no unset optionals."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


PodKey = NewType("PodKey", str)
"""``<namespace>/<full pod name>``: how the desired set, workers and status are keyed."""


def pod_key(namespace: str, name: str) -> PodKey:
    return PodKey(f"{namespace}/{name}")
