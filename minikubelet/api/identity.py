"""Static pod identity, and the desired set a manifest source publishes.

kubelet names a static pod ``<metadata.name>-<node name>``, puts it in namespace ``default``
unless the manifest says otherwise, and derives its UID from the file's content, the node and
the path: any edit is a new pod. These records carry that identity from the source to the
reconciler; they live here, at the bottom, because both sides of that hand-off read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from minikubelet.api.errors import ManifestError
from minikubelet.api.model import ObjectMeta, Pod, PodKey

CONFIG_SOURCE = "kubernetes.io/config.source"
CONFIG_HASH = "kubernetes.io/config.hash"
CONFIG_SEEN = "kubernetes.io/config.seen"
CONFIG_MIRROR = "kubernetes.io/config.mirror"
CONFIG_FILE = "minikubelet.io/config.file"  # the manifest's path, for operators


@dataclass(frozen=True, slots=True)
class StaticPod:
    key: PodKey  # <namespace>/<full name>
    uid: str  # derived from content, node and path: a changed file is a new pod
    metadata: ObjectMeta  # final: full name, namespace, uid, config.* annotations
    pod: Pod  # the decoded, defaulted manifest
    source: str  # the manifest's path
    warnings: tuple[str, ...] = ()  # real k8s fields minikubelet accepts but does not act on

    @property
    def name(self) -> str:
        assert self.metadata.name is not None
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace or "default"


@dataclass(frozen=True, slots=True)
class DesiredSet:
    """Everything the manifests directory asks for, at one moment. Latest wins."""

    pods: dict[PodKey, StaticPod] = field(default_factory=dict)
    errors: dict[str, ManifestError] = field(default_factory=dict)  # by file path
    # The directory (or one on its way from /) fails the trust rules: every file in it is refused.
    directory_error: ManifestError | None = None
    # Why the directory cannot be read (missing, not a directory, no permission), or None. The
    # pods and errors are then those last read from it, unless the source counts it as empty.
    unavailable: str | None = None
    # The directory read, symlinks resolved (behind git-sync's link: the checkout of one commit).
    resolved: str | None = None
