"""Manifest bytes -> one JSON-shaped object, at a cost bounded before it is paid.

Anyone who can write to the manifests directory can hand the daemon any bytes, and the daemon
reads every manifest in the same pass: one file must not be able to take the memory or the time
of the others. A YAML alias is a reference, so 500 bytes of anchors can stand for ten million
values; a JSON or YAML document can nest until a recursive walk overflows the stack; an integer
literal can have a million digits. So every document is measured before it is built:

- **Size.** At most ``MAX_MANIFEST_BYTES`` (1 MiB, the API server's request limit).
- **Values.** At most ``MAX_VALUES`` keys, items and scalars (a large real pod has a few
  hundred), and at most ``MAX_DEPTH`` levels of nesting (a pod needs about a dozen). YAML is
  counted while it is composed: LibYAML calls ``descend_resolver`` for every node it builds, so
  an oversized document stops at the limit instead of being read to the end, and the error
  names the path where it stopped.
- **Aliases.** A composed document that uses anchors is measured as if every alias were written
  out in full (values, characters of text and depth), without writing it out: the walk keeps
  each anchored node's totals. An alias that refers to a node containing itself is refused.
  Merge keys (``<<``) only ever copy what is measured here.
- **Numbers.** A YAML integer literal longer than ``MAX_NUMBER_CHARS`` stays a string (as go-yaml
  does with what it cannot parse), so no int() of a huge literal ever runs (its cost grows with
  the square of the length for YAML's base-60 form) and the field that expected a number
  reports it. JSON's reader refuses integers of more than 4300 digits; such a document is read
  as YAML. Explicitly tagged scalars that do not parse (``!!int abc``) are
  YAML errors with their line and column.
- **Strings.** A NUL character, or an unpaired UTF-16 surrogate (JSON's ``"\\ud800"``), is an
  error at the field that holds it: no such string can be an argument, an environment variable
  or a path for the kernel, nor be encoded as UTF-8. Those strings are replaced (U+FFFD) in the
  object returned, so that the stages after this one can still report the manifest's other
  problems.

JSON is read with the standard library (its recursion guard answers very deep documents; they
are then read as YAML, which reports the depth with a path) and measured by the same walk.
The measured costs are in docs/validation.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from minikubelet.api.errors import ErrorType, FieldError, ManifestError
from minikubelet.api.field import invalid, render_path

MAX_MANIFEST_BYTES: Final = 1024 * 1024
MAX_VALUES: Final = 10_000
MAX_DEPTH: Final = 64
MAX_NUMBER_CHARS: Final = 64

_BAD_CHARACTERS: Final = re.compile("[\x00\ud800-\udfff]")
_SURROGATES: Final = re.compile("[\ud800-\udfff]")

Loc = tuple[int | str, ...]


@dataclass(frozen=True, slots=True)
class Document:
    value: dict[str, object]  # the one object, with JSON's types only
    errors: list[FieldError]  # strings no kernel interface can take, by field path


def load_document(data: bytes, *, source: str) -> Document:
    """YAML or JSON bytes -> the one object they hold, with JSON's types only.

    Raises ManifestError for anything that is not exactly one object within the limits above.
    """

    def fail(error: FieldError) -> ManifestError:
        return ManifestError(source, [error])

    if len(data) > MAX_MANIFEST_BYTES:
        return_detail = f"may not be more than {MAX_MANIFEST_BYTES} bytes (1 MiB)"
        raise fail(FieldError(ErrorType.TOO_LONG, "", return_detail))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise fail(_whole(f"manifest is not UTF-8: {exc}")) from None
    try:
        documents = _load_json(text)
        if documents is None:
            documents = _load_yaml(text)
    except _LimitExceeded as exc:
        raise fail(exc.error) from None
    if not documents:
        raise fail(_whole("manifest is empty: expected one Pod"))
    if len(documents) > 1:
        raise fail(
            _whole(f"found {len(documents)} YAML documents: a manifest holds exactly one Pod")
        )
    (document,) = documents
    if not isinstance(document, dict):
        kind = "list" if isinstance(document, list) else type(document).__name__
        raise fail(_whole(f"manifest must be a YAML or JSON object (a Pod), not a {kind}"))
    value = _jsonable(document)
    errors: list[FieldError] = []
    if "\\" in text:  # only an escape (YAML's or JSON's) can write a NUL or a surrogate
        value = _checked(value, (), errors)
    assert isinstance(value, dict)
    return Document(value=value, errors=errors)


def _whole(detail: str) -> FieldError:
    return FieldError(ErrorType.INVALID, "", detail)


class _LimitExceeded(Exception):
    """A document over one of the limits; ``error`` says which, and where."""

    def __init__(self, error: FieldError) -> None:
        super().__init__(str(error))
        self.error = error


def _too_many(loc: Loc) -> _LimitExceeded:
    detail = (
        f"must have at most {MAX_VALUES} values in the whole manifest "
        "(keys, items and scalars, each alias counted as what it repeats)"
    )
    return _LimitExceeded(FieldError(ErrorType.TOO_MANY, render_path(loc), detail))


def _too_deep(loc: Loc) -> _LimitExceeded:
    detail = f"must not nest more than {MAX_DEPTH} levels deep"
    return _LimitExceeded(FieldError(ErrorType.INVALID, render_path(loc), detail))


def _too_much_text(loc: Loc) -> _LimitExceeded:
    detail = (
        f"aliases may not repeat the manifest's text beyond {MAX_MANIFEST_BYTES} characters in all"
    )
    return _LimitExceeded(FieldError(ErrorType.TOO_LONG, render_path(loc), detail))


# --- JSON ---------------------------------------------------------------------------------------


def _load_json(text: str) -> list[object] | None:
    """The document, if ``text`` is a JSON object; None to read it as YAML instead."""
    if not text.lstrip().startswith("{"):
        return None
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        # Not JSON, too deep for the stack, or an integer of thousands of digits: YAML reads
        # it (JSON is YAML) and says what is wrong, where.
        return None
    _measure(document, _json_children, _json_chars)
    return [document]


def _json_children(value: object) -> Iterable[tuple[int | str, object]] | None:
    if isinstance(value, dict):
        return [
            step for key, item in value.items() for step in ((key, key), (key, item))
        ]  # a key is a value too, as in YAML
    if isinstance(value, list):
        return enumerate(value)
    return None


def _json_chars(value: object) -> int:
    return len(value) if isinstance(value, str) else 0


# --- YAML ---------------------------------------------------------------------------------------

_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[valid-type,misc]
    """SafeLoader that counts what it composes, leaves timestamps as strings (sigs.k8s.io/yaml
    does the same), and keeps over-long integer literals as strings."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.values = 0  # nodes composed so far, in every document of the stream
        self.at: list[
            object
        ] = []  # the (parent index) of each node being composed, outermost first

    # The composer (LibYAML's or PyYAML's) calls these around every node it builds, aliases
    # excepted; minikubelet uses no path resolvers, so they are free for counting.
    def descend_resolver(self, current_node: Node | None, current_index: object) -> None:
        self.values += 1
        self.at.append(current_index)
        if self.values > MAX_VALUES:
            raise _too_many(_yaml_loc(self.at))
        if len(self.at) > MAX_DEPTH:
            raise _too_deep(_yaml_loc(self.at))

    def ascend_resolver(self) -> None:
        self.at.pop()


def _scalar(
    construct: Callable[[SafeConstructor, ScalarNode], Any], *, bounded: bool = False
) -> Callable[[SafeConstructor, ScalarNode], object]:
    """``construct`` for an explicitly tagged scalar that may not parse (``!!int abc``): its
    ValueError, KeyError, IndexError or AttributeError becomes a YAML error at the node.
    ``bounded``: a literal longer than MAX_NUMBER_CHARS stays a string."""

    def scalar(loader: SafeConstructor, node: ScalarNode) -> object:
        if bounded and len(node.value) > MAX_NUMBER_CHARS:
            return node.value
        try:
            return construct(loader, node)
        except (ValueError, LookupError, AttributeError, TypeError) as exc:
            tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
            problem = f"cannot read {node.value!r} as {tag}: {exc}"
            raise ConstructorError(None, None, problem, node.start_mark) from None

    return scalar


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _Base.yaml_implicit_resolvers.items()
}
for _tag, _construct in (
    ("int", SafeConstructor.construct_yaml_int),
    ("float", SafeConstructor.construct_yaml_float),
    ("bool", SafeConstructor.construct_yaml_bool),
    ("timestamp", SafeConstructor.construct_yaml_timestamp),
):
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _scalar(_construct, bounded=_tag == "int"))


def _yaml_loc(at: list[object]) -> Loc:
    """The field path of the node being composed: mapping values are reached through their
    key node, sequence items through their index; keys themselves (index None) add nothing."""
    loc: list[int | str] = []
    for index in at:
        if isinstance(index, int):
            loc.append(index)
        elif isinstance(index, ScalarNode):
            loc.append(index.value)
        elif isinstance(index, Node):
            loc.append("?")  # a complex key: YAML allows it, no Pod field has one
    return tuple(loc)


def _load_yaml(text: str) -> list[object]:
    loader = _Loader(text)
    try:
        documents: list[object] = []
        while loader.check_node():
            node = loader.get_node()
            if "&" in text and "*" in text:  # maybe an alias: measure it written out
                _measure(node, _node_children, _node_chars, memo=True)
            value = loader.construct_document(node)
            if value is not None:
                documents.append(value)
        return documents
    except yaml.YAMLError as exc:
        detail = f"error parsing YAML: {_yaml_problem(exc)}"
        raise _LimitExceeded(_whole(detail)) from None
    finally:
        loader.dispose()


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is None:
        return str(problem)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"


def _node_children(node: object) -> Iterable[tuple[int | str, object]] | None:
    if isinstance(node, SequenceNode):
        return enumerate(node.value)
    if isinstance(node, MappingNode):
        steps: list[tuple[int | str, object]] = []
        for key, item in node.value:
            name = key.value if isinstance(key, ScalarNode) else "?"
            steps += [(name, key), (name, item)]
        return steps
    return None


def _node_chars(node: object) -> int:
    return len(node.value) if isinstance(node, ScalarNode) else 0


# --- the measuring walk -------------------------------------------------------------------------


@dataclass(slots=True)
class _Frame:
    node: object  # a value with children, being walked
    part: int | str  # its key or index in its parent (the first path the walk reached it by)
    children: Iterator[tuple[int | str, object]]  # those not walked yet
    values_at_entry: int  # the running totals before the walk entered it
    text_at_entry: int
    height: int = 1  # levels from it down to its deepest descendant so far, itself included


def _measure(
    root: object,
    children: Callable[[object], Iterable[tuple[int | str, object]] | None],
    chars: Callable[[object], int],
    *,
    memo: bool = False,
) -> None:
    """Raise _LimitExceeded if ``root`` written out in full (every shared value repeated at each
    place it is referenced) exceeds the limits. Iterative, so that depth costs no stack; with
    ``memo`` a shared value is walked once and then counted by its recorded totals."""
    done: dict[int, tuple[int, int, int]] = {}  # id -> (values, chars, height) once walked
    active: set[int] = set()  # ids of the values on the walk's current path
    stack: list[_Frame] = []  # the path to the value being entered; the root's part is unused
    values = text = 0

    def loc(part: int | str | None) -> Loc:
        parts = [frame.part for frame in stack[1:]]
        return tuple(parts if part is None else [*parts, part])

    def enter(value: object, part: int | str | None) -> int:
        """Count ``value`` in, push a frame if its children are to be walked; its height."""
        nonlocal values, text
        frame = None
        if memo and id(value) in done:
            more_values, more_text, height = done[id(value)]
            values += more_values
            text += more_text
        else:
            if memo and id(value) in active:
                detail = "an alias may not refer to a value that contains it"
                raise _LimitExceeded(FieldError(ErrorType.INVALID, render_path(loc(part)), detail))
            own = chars(value)
            values += 1
            text += own
            height = 1
            kids = children(value)
            if kids is not None:
                frame = _Frame(
                    value, 0 if part is None else part, iter(kids), values - 1, text - own
                )
        if len(stack) + height > MAX_DEPTH:
            raise _too_deep(loc(part))
        if values > MAX_VALUES:
            raise _too_many(loc(part))
        if text > MAX_MANIFEST_BYTES:
            raise _too_much_text(loc(part))
        if frame is not None:
            stack.append(frame)
            active.add(id(value))
        return height

    enter(root, None)
    while stack:
        frame = stack[-1]
        step = next(frame.children, None)
        if step is not None:
            height = enter(step[1], step[0])
            if stack[-1] is frame:  # a leaf, or a value walked before
                frame.height = max(frame.height, height + 1)
            continue
        stack.pop()
        active.discard(id(frame.node))
        if memo:
            walked = (values - frame.values_at_entry, text - frame.text_at_entry, frame.height)
            done[id(frame.node)] = walked
        if stack:
            stack[-1].height = max(stack[-1].height, frame.height + 1)


# --- YAML's data as JSON's ----------------------------------------------------------------------


def _jsonable(value: object) -> object:
    """YAML's richer data as the JSON the API decodes: string keys, no Python-only types
    (depth is bounded by now)."""
    if isinstance(value, dict):
        return {_json_key(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _checked(value: object, loc: Loc, errors: list[FieldError]) -> object:
    """``value`` with each string checked for characters no kernel interface takes."""
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for key, item in value.items():
            name = _string(key, loc, errors, is_key=True)
            out[name] = _checked(item, (*loc, name), errors)
        return out
    if isinstance(value, list):
        return [_checked(v, (*loc, i), errors) for i, v in enumerate(value)]
    return _string(value, loc, errors) if isinstance(value, str) else value


def _json_key(key: object) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return "null" if key is None else str(key)


def _string(text: str, loc: Loc, errors: list[FieldError], *, is_key: bool = False) -> str:
    if not _BAD_CHARACTERS.search(text):
        return text
    detail = (
        "must not contain a NUL character"
        if "\x00" in text
        else "must be valid Unicode (no unpaired surrogate)"
    )
    clean = _SURROGATES.sub("\ufffd", text)
    if is_key:
        detail = f"a key {detail}"
    errors.append(invalid(render_path(loc), clean, detail))
    return clean
