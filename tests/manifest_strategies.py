"""Hypothesis strategies: Pod manifests generated from the schema in ``api.model``.

``manifests()`` walks the pydantic models field by field (wire names, required fields, types,
enum values), so a field added to the schema is fuzzed without a change here. Each manifest
first picks a *nastiness*, the chance that any one field gets a hostile value instead of a
plausible one: most manifests are almost valid (so that the pipeline gets past the schema and
the range checks run) and some are hostile everywhere. Hostile values are out-of-range and
boundary integers (int32, int64, uid limits), floats where integers belong (``1e309``, NaN),
wrong types, NUL-bearing and unpaired-surrogate strings, very long strings, huge lists,
unknown fields and absurd quantities.

Hypothesis draws one seed per manifest and a ``random.Random`` does the rest: a manifest takes
hundreds of decisions, and as Hypothesis draws each costs far more time than the code under
test spends on the whole manifest. Shrinking a failure is then of little use, so a failing
test shows the manifest itself; with ``derandomize`` the same seeds come back every run.

``safe=True`` is for manifests that a real daemon may run: whatever else varies, commands come
from a harmless set (``sleep 3600``, ``true``), hostPath volumes and mount paths stay under the
given directory, and probes only reach the loopback address. The hostile values still reach
those fields, in forms that validation must refuse (NUL, too long) or that cannot run.
"""

from __future__ import annotations

import copy
import json
import random
import string
import types
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from hypothesis import strategies as st
from pydantic import BaseModel

from minikubelet.api import model

NASTY_INTS: list[int] = [
    -1,
    0,
    2**31 - 1,
    2**31,
    -(2**31) - 1,
    2**32 - 1,  # uid -1 as an unsigned 32-bit number
    2**32,
    2**63 - 1,
    2**63,
    -(2**63) - 1,
    10**30,
    10**100,
]
NASTY_STRINGS: list[str] = [
    "",
    "a\x00b",
    "\x00",
    "\ud800",
    "é\udcff",
    " padded ",
    "line\r\nbreak",
    "$(A)$(A)$(A)$(A)",
    "../../etc",
    "x" * 300,
    "/" + "d" * 5000,
    "x" * 140_000,  # over MAX_ARG_STRLEN
]
NASTY_QUANTITIES: list[object] = [
    "1e1000000",
    "-1e1000000",
    "1e4294967296",
    "9" * 70,
    "1" * 64,
    "99999999999999999999Ei",
    "0.000000000001",
    "1.5.5",
    "",
    "-1",
    1e309,
    float("nan"),
    10**30,
    "100m\x00",
]
WRONG_TYPED: list[object] = [
    None,
    True,
    1.5,
    10.0,
    1e309,
    -1e309,
    float("nan"),
    "text",
    "10",
    [],
    {},
    [1, 2],
    {"a": 1},
    10**30,
]
HUGE_LIST = ["x"] * 12_000  # more values than a manifest may hold, on its own
UNKNOWN_FIELDS = ["periodSecond", "imagePullPolicie", "x\x00", "spec"]

QUANTITIES: list[object] = ["0", "1", "100m", "250m", "1.5", "64Mi", "1Gi", "1e3", "2k", 1, 0.5]
SMALL_INTS = [1, 1, 2, 3, 5, 10, 30]
NASTINESS = [0, 0, 2, 5, 30]  # percent, per manifest

# Commands a daemon may really run, with their args.
SAFE_ARGV: list[tuple[list[str] | None, list[str] | None]] = [
    (["sleep"], ["3600"]),
    (["sleep", "3600"], None),
    (["true"], None),
    (["sh", "-c", "exit 3"], None),
]
SAFE_EXEC: list[list[str]] = [["true"], ["false"], ["sleep", "1"]]

# Fields of which a valid object sets exactly one (the handler of a probe or hook, a volume's
# source, an env var's source): a plausible object gets one, the first one most often.
ONE_OF: dict[type[BaseModel], tuple[str, ...]] = {
    model.Probe: ("exec", "tcpSocket", "httpGet", "grpc"),
    model.LifecycleHandler: ("exec", "sleep", "httpGet", "tcpSocket"),
    model.Volume: ("emptyDir", "hostPath", "configMap"),
    model.EnvVarSource: ("fieldRef", "resourceFieldRef", "secretKeyRef"),
}
# Fields a plausible object always sets, though the schema does not require them.
ALWAYS: frozenset[tuple[type[BaseModel], str]] = frozenset(
    {(model.ExecAction, "command"), (model.ObjectMeta, "name")}
)
# Fields a plausible object rarely sets, because most of their values are refused.
RARE: frozenset[str] = frozenset(
    {"restartPolicy", "terminationGracePeriodSeconds", "valueFrom", "subPath", "hostPort"}
)


def manifests(
    *, safe: bool = False, root: str = "/tmp/minikubelet-fuzz"
) -> st.SearchStrategy[dict[str, Any]]:
    """Pod manifests as plain data, from the schema; see the module docstring."""
    seeds = st.integers(min_value=0, max_value=2**64 - 1)
    return seeds.map(lambda seed: generate(random.Random(seed), safe=safe, root=root))


def manifest_files(
    *, safe: bool = False, root: str = "/tmp/minikubelet-fuzz"
) -> st.SearchStrategy[bytes]:
    """Manifests as the bytes of a file: YAML, or JSON (always when YAML cannot hold a string)."""
    seeds = st.integers(min_value=0, max_value=2**64 - 1)
    return seeds.map(lambda seed: _file(random.Random(seed), safe=safe, root=root))


def manifest_batch(
    seed: int, size: int, *, safe: bool = False, root: str = "/tmp/minikubelet-fuzz"
) -> list[bytes]:
    """``size`` manifest files from one seed (for a test that reports the seed, not the files:
    Hypothesis would print a batch of large files in full)."""
    rng = random.Random(seed)
    return [_file(rng, safe=safe, root=root) for _ in range(size)]


def _file(rng: random.Random, *, safe: bool, root: str) -> bytes:
    return serialize(rng, generate(rng, safe=safe, root=root))


_Dumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def serialize(rng: random.Random, manifest: dict[str, Any]) -> bytes:
    if rng.random() < 0.5:
        try:
            return yaml.dump(manifest, Dumper=_Dumper, allow_unicode=True).encode()
        except (yaml.YAMLError, UnicodeEncodeError):
            pass
    return json.dumps(manifest).encode("utf-8", "surrogatepass")


@dataclass(frozen=True)
class _Gen:
    rng: random.Random
    nasty: float  # the chance that one field's value is hostile
    safe: bool  # runnable by a real daemon (see the module docstring)
    root: str  # safe mode: the directory hostPath volumes and mount paths stay under

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def pick(self, choices: list[Any] | tuple[Any, ...]) -> Any:
        return copy.deepcopy(self.rng.choice(choices))  # the pools' lists and dicts are shared

    def label(self) -> str:
        """A DNS label: a-z first, up to 8 characters."""
        rest = "".join(
            self.rng.choices(string.ascii_lowercase + string.digits, k=self.rng.randint(0, 7))
        )
        return self.rng.choice(string.ascii_lowercase) + rest

    def text(self) -> str:
        return "".join(self.rng.choices(string.printable + "éß€", k=self.rng.randint(0, 8)))


def generate(
    rng: random.Random, *, safe: bool = False, root: str = "/tmp/minikubelet-fuzz"
) -> dict[str, Any]:
    """One manifest from ``rng`` (see the module docstring)."""
    gen = _Gen(rng=rng, nasty=rng.choice(NASTINESS) / 100, safe=safe, root=root)
    pod = _object(gen, model.Pod, ())
    pod["apiVersion"], pod["kind"] = "v1", "Pod"  # the rest of the pipeline is what matters
    metadata = pod.setdefault("metadata", {})
    if not isinstance(metadata, dict):
        pod["metadata"] = metadata = {}
    if not gen.chance(gen.nasty):
        metadata["name"] = gen.label()
    spec = pod.setdefault("spec", {})
    if isinstance(spec, dict) and not isinstance(spec.get("containers"), list):
        spec["containers"] = [_object(gen, model.Container, ("spec", "containers", 0))]
    if isinstance(spec, dict) and not gen.chance(gen.nasty):
        _add_mounted_volumes(spec)
    if safe:
        _quick_to_stop(pod)
    return pod


def _quick_to_stop(value: object) -> None:
    """Grace periods and sleep hooks of at most 2 s, so that a daemon running these pods
    stops them quickly (a valid 2^63-1 s grace with a preStop sleep would never end)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("terminationGracePeriodSeconds", "seconds") and isinstance(item, int):
                value[key] = min(item, 2)
            else:
                _quick_to_stop(item)
    elif isinstance(value, list):
        for item in value:
            _quick_to_stop(item)


def _add_mounted_volumes(spec: dict[str, Any]) -> None:
    """An emptyDir volume for each name a volumeMount uses and no volume declares."""
    volumes = spec.setdefault("volumes", [])
    if not isinstance(volumes, list):
        return
    declared = {v.get("name") for v in volumes if isinstance(v, dict)}
    containers = [spec.get("initContainers"), spec.get("containers")]
    for container in [c for group in containers if isinstance(group, list) for c in group]:
        mounts = container.get("volumeMounts") if isinstance(container, dict) else None
        for mount in mounts if isinstance(mounts, list) else []:
            name = mount.get("name") if isinstance(mount, dict) else None
            if isinstance(name, str) and name not in declared:
                volumes.append({"name": name, "emptyDir": {}})
                declared.add(name)


def _object(gen: _Gen, cls: type[BaseModel], loc: tuple[object, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    ignored = getattr(cls, "ignored_fields", frozenset())
    group = ONE_OF.get(cls, ())
    chosen = gen.pick([*group, group[0], group[0]]) if group else None
    for name, info in cls.model_fields.items():
        wire = info.alias or name
        if wire in ("status", "apiVersion", "kind"):
            continue
        if wire in group:
            chance = 1.0 if wire == chosen else 0.0
        elif info.is_required() or (cls, wire) in ALWAYS:
            chance = 1.0
        elif cls is model.Volume:
            chance = 0.0
        elif wire in ignored:
            chance = 0.02
        elif wire in RARE or len(loc) > 6:
            chance = 0.08
        else:
            chance = 0.35
        nasty = gen.chance(gen.nasty)
        if nasty:
            out[wire] = _hostile(gen, info.annotation)
        elif gen.chance(chance):
            out[wire] = _plausible(gen, cls, wire, info.annotation, (*loc, wire))
    if gen.chance(gen.nasty / 10):
        out[gen.pick(UNKNOWN_FIELDS)] = 1
    return out


def _hostile(gen: _Gen, annotation: Any) -> object:
    """A value a user should be told off for, of the field's type or not."""
    base = _unwrap(annotation)
    pools: list[list[Any]] = [WRONG_TYPED]
    if base is int or _is_int_or_string(base):
        pools.append(NASTY_INTS)
    if base is str or _is_int_or_string(base):
        pools.append(NASTY_STRINGS)
    if _is_quantity(base):
        pools.append(NASTY_QUANTITIES)
    if get_origin(base) is list:
        pools.append([[_hostile(gen, get_args(base)[0])], HUGE_LIST])
    if get_origin(base) is dict:
        pools.append([{"a\x00": "1"}, {"k" * 300: "v"}, {"cpu": "1e1000000"}])
    return gen.pick(gen.pick(pools))


def _plausible(
    gen: _Gen, cls: type[BaseModel], wire: str, annotation: Any, loc: tuple[object, ...]
) -> Any:
    special = _special(gen, cls, wire, loc)
    if special is not _NONE:
        return special
    return _value(gen, annotation, loc)


_NONE = object()


def _special(gen: _Gen, cls: type[BaseModel], wire: str, loc: tuple[object, ...]) -> object:
    """Plausible values where a random one would rarely be valid, or (safe mode) be unsafe."""
    pick, root = gen.pick, gen.root
    if cls is model.Container:
        if wire == "name":
            return gen.label()
        if wire in ("command", "args"):
            command, args = pick(SAFE_ARGV)
            return command if wire == "command" else args
        if wire == "workingDir" and gen.safe:
            return pick(["/", "/tmp", root, f"{root}/missing"])
        if wire == "image":
            return pick(["busybox", "nginx:1.25", "registry.k8s.io/pause:3.9"])
        if wire == "restartPolicy":
            return pick(["Always", None]) if "initContainers" in loc else None
    if cls is model.ExecAction and wire == "command":
        return pick(SAFE_EXEC)
    if cls in (model.HTTPGetAction, model.TCPSocketAction) and wire == "host" and gen.safe:
        return "127.0.0.1"
    if cls is model.HTTPGetAction and wire == "path":
        return pick(["/", "/healthz", "/ready?x=1"])
    if cls is model.HTTPHeader:
        return pick(["X-Test", "Accept"] if wire == "name" else ["1", "a b"])
    if cls in (model.ContainerPort, model.GRPCAction) and wire in ("containerPort", "port"):
        return gen.rng.randint(1, 65535)
    if cls is model.ContainerPort and wire == "name":
        return pick(["http", "metrics", "admin-1"])
    if cls is model.ContainerPort and wire == "hostIP":
        return pick(["127.0.0.1", "0.0.0.0", "::1"])
    if cls is model.Probe and wire == "successThreshold":
        return pick([1, 1, 1, 2])
    if cls is model.ObjectMeta:
        if wire in ("name", "namespace"):
            return gen.label()
        if wire in ("labels", "annotations"):
            return {gen.label(): gen.label() for _ in range(gen.rng.randint(0, 2))}
        if wire == "creationTimestamp":
            return "2024-01-01T00:00:00Z"
    if cls is model.EnvVar and wire == "name":
        return gen.label().upper().replace("-", "_")
    if cls is model.EnvVar and wire == "value":
        return pick(["x", "$(A)", "$$(A)", "", gen.text()])
    if cls in (model.Volume, model.VolumeMount) and wire == "name":
        return pick(["data", "logs", "cache"])
    if cls is model.VolumeMount:
        if wire == "mountPath":
            if gen.safe:
                return f"{root}/mnt/{gen.label()}"
            return pick(["/data", "/var/log", "/srv/x"])
        if wire == "subPath":
            return pick(["a", "a/b"])
    if cls is model.HostPathVolumeSource and wire == "path":
        base = root if gen.safe else "/srv"
        return pick([f"{base}/host", f"{base}/host/file", f"{base}/../x"])
    if cls is model.HostPathVolumeSource and wire == "type":
        return pick(["", "DirectoryOrCreate", "Directory", "FileOrCreate"])
    if cls is model.ResourceRequirements and wire in ("limits", "requests"):
        keys = ["cpu", "memory", "cpu", "memory", "ephemeral-storage", "gpu"]
        return {pick(keys): pick(QUANTITIES) for _ in range(gen.rng.randint(0, 2))}
    if cls is model.ObjectFieldSelector and wire == "fieldPath":
        return pick(["metadata.name", "spec.nodeName", "status.podIP", "metadata.labels['a']"])
    if cls is model.ObjectFieldSelector and wire == "apiVersion":
        return "v1"
    if cls is model.ResourceFieldSelector and wire == "resource":
        return pick(["limits.cpu", "requests.memory", "limits.gpu"])
    if cls is model.ResourceFieldSelector and wire == "divisor":
        return pick(["1", "1m", "1Mi", "2"])
    if cls is model.PodSpec:
        if wire == "runtimeClassName":
            return "process"
        if wire == "nodeName":
            return gen.label()
        if wire in ("containers", "initContainers"):
            count = gen.rng.randint(1, 2) if wire == "containers" else 1
            return [_object(gen, model.Container, ("spec", wire, i)) for i in range(count)]
        if wire == "volumes":
            names = gen.rng.sample(["data", "logs", "cache"], gen.rng.randint(0, 3))
            volumes = [_object(gen, model.Volume, ("spec", wire, i)) for i in range(len(names))]
            return [{**v, "name": n} for v, n in zip(volumes, names, strict=True)]
    if wire == "seconds" or wire.endswith(("Seconds", "Threshold")):
        return pick(SMALL_INTS)
    return _NONE


def _value(gen: _Gen, annotation: Any, loc: tuple[object, ...]) -> Any:
    base = _unwrap(annotation)
    origin = get_origin(base)
    rng = gen.rng
    if isinstance(base, type) and issubclass(base, BaseModel):
        return _object(gen, base, loc)
    if origin is Literal:
        return rng.choice(get_args(base))
    if origin is list:
        return [_value(gen, get_args(base)[0], (*loc, i)) for i in range(rng.randint(0, 2))]
    if origin is dict:
        item = get_args(base)[1]
        return {gen.label(): _value(gen, item, loc) for _ in range(rng.randint(0, 2))}
    if _is_quantity(base):
        return gen.pick(QUANTITIES)
    if _is_int_or_string(base):
        return rng.randint(1, 65535) if gen.chance(0.5) else gen.label()
    if base is bool:
        return gen.chance(0.5)
    if base is int:
        return gen.pick(SMALL_INTS) if gen.chance(0.8) else rng.randint(0, 2**31 - 1)
    if base is str:
        return gen.label() if gen.chance(0.5) else gen.text()
    if base is datetime:
        return gen.pick(["2024-01-01T00:00:00Z", "yesterday"])
    return _json(gen, depth=0)  # JsonValue: the opaque, ignored fields


def _json(gen: _Gen, *, depth: int) -> object:
    kind = gen.rng.randint(0, 5 if depth < 3 else 3)
    if kind == 4:
        return [_json(gen, depth=depth + 1) for _ in range(gen.rng.randint(0, 3))]
    if kind == 5:
        return {gen.text(): _json(gen, depth=depth + 1) for _ in range(gen.rng.randint(0, 3))}
    return [None, gen.chance(0.5), gen.rng.randint(-5, 5), gen.text()][kind]


def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> X; ``Annotated[X, ...]`` -> X (IntOrString and the quantity union stay)."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) == len(get_args(annotation)):
                return annotation
            if len(members) == 1:
                annotation = members[0]
            else:
                return Union[tuple(members)]  # noqa: UP007
        else:
            return annotation


def _is_quantity(annotation: Any) -> bool:
    return set(get_args(annotation)) == {int, float, str}


def _is_int_or_string(annotation: Any) -> bool:
    return set(get_args(annotation)) == {int, str}


# --- documents that cost more to read than their size says -------------------------------------


def billion_laughs(*, levels: int = 9, fan: int = 10, name: str = "bomb") -> str:
    """A Pod whose ``affinity`` is ``fan ** levels`` strings, in about 600 bytes of aliases."""
    lines = [
        f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}",
        "x0: &a0 [" + ", ".join(["lol"] * fan) + "]",
    ]
    for i in range(1, levels):
        lines.append(f"x{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fan) + "]")
    lines.append(f"spec: {{containers: [{{name: c}}], affinity: *a{levels - 1}}}")
    return "\n".join(lines) + "\n"


def abusive_manifests(max_bytes: int) -> dict[str, str]:
    """Manifests that are each expensive in one way, by what they attack."""
    head = "apiVersion: v1\nkind: Pod\nmetadata: {name: abuse}\n"
    items = ", ".join(["1"] * ((max_bytes - 200) // 3))
    merges = "".join(f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: 1}}\n" for i in range(1, 40))
    text = "x" * (max_bytes // 2 - 200)
    return {
        "alias-bomb": billion_laughs(),
        "merge-bomb": head + "m0: &m0 {a: 1}\n" + merges + "spec: {containers: [{name: c}]}\n",
        "text-bomb": head
        + f"t: &t {text}\nspec: {{containers: [{{name: c, args: [*t, *t, *t]}}]}}\n",
        "wide": head + f"spec: {{containers: [{{name: c}}], affinity: [{items}]}}\n",
        "deep": head + "spec: {affinity: " + "[" * 500 + "]" * 500 + "}\n",
        "cycle": head + "spec: &s {containers: [{name: c}], affinity: *s}\n",
    }
