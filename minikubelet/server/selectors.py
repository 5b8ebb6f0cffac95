"""Label and field selectors, as the API server reads ``labelSelector`` and ``fieldSelector``.

Labels (apimachinery ``labels.Parse``): ``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``,
``a notin (x)``, ``a`` (exists), ``!a`` (does not exist), ``a>1`` and ``a<1`` (integers), every
term ANDed. Fields (``fields.ParseSelector``): ``f=v``, ``f==v``, ``f!=v``, ANDed; each resource
supports its own set of fields, and any other is ``field label not supported: f``, a 400.
Backslash escapes in field values (``\\,``, ``\\=``) are honoured, as kubectl writes them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from minikubelet.server.errors import bad_request

# --- labels ---------------------------------------------------------------------------------

_LABEL_KEY = re.compile(
    r"^([A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)


@dataclass(frozen=True, slots=True)
class _Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", ">", "<"
    values: tuple[str, ...]

    def matches(self, labels: Mapping[str, object]) -> bool:
        present = self.key in labels
        value = str(labels[self.key]) if present else ""
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        if not present:
            return False
        try:
            have, want = int(value), int(self.values[0])
        except ValueError:
            return False
        return have > want if self.op == ">" else have < want


def _split_terms(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    terms: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(ch)
    terms.append("".join(current))
    return [t.strip() for t in terms if t.strip()]


_SET_TERM = re.compile(r"^(\S+)\s+(in|notin)\s*\((.*)\)$")
_CMP_TERM = re.compile(r"^([^=!<>\s]+)\s*(==|!=|=|>|<)\s*(.*)$")


class LabelSelector:
    """A parsed ``labelSelector``; ``matches(labels)``. The empty selector matches everything."""

    def __init__(self, text: str | None) -> None:
        self.text = text or ""
        self._requirements = [self._parse(term) for term in _split_terms(self.text)]

    def _parse(self, term: str) -> _Requirement:
        bad = bad_request(f"unable to parse requirement: invalid label selector: {term!r}")
        if m := _SET_TERM.match(term):
            values = tuple(v.strip() for v in m.group(3).split(",") if v.strip())
            key, op = m.group(1), m.group(2)
        elif m := _CMP_TERM.match(term):
            key, op, value = m.group(1), m.group(2), m.group(3).strip()
            op = "=" if op == "==" else op
            if op in (">", "<") and not re.fullmatch(r"-?\d+", value):
                raise bad
            values = (value,)
        elif term.startswith("!"):
            key, op, values = term[1:].strip(), "!", ()
        else:
            key, op, values = term, "exists", ()
        if not _LABEL_KEY.match(key):
            raise bad
        return _Requirement(key=key, op=op, values=values)

    def matches(self, labels: Mapping[str, object] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self._requirements)


# --- fields ---------------------------------------------------------------------------------


def _split_unescaped(text: str, sep: str) -> list[str]:
    out: list[str] = []
    current: list[str] = []
    escaped = False
    for ch in text:
        if escaped:
            current.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == sep:
            out.append("".join(current))
            current = []
        else:
            current.append(ch)
    out.append("".join(current))
    return out


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


_FIELD_TERM = re.compile(r"^([^=!]+?)\s*(!=|==|=)(.*)$")


@dataclass(frozen=True, slots=True)
class _FieldTerm:
    field: str
    equal: bool
    value: str


class FieldSelector:
    """A parsed ``fieldSelector`` checked against the fields a resource supports.

    ``fields`` maps each supported field name to a function of the object. Raises a 400
    ApiError for a term it cannot parse or a field the resource does not support."""

    def __init__(self, text: str | None, fields: Mapping[str, Callable[[object], str]]) -> None:
        self.text = text or ""
        self._fields = fields
        self._terms: list[_FieldTerm] = []
        for term in _split_unescaped(self.text, ","):
            term = term.strip()
            if not term:
                continue
            m = _FIELD_TERM.match(term)
            if m is None:
                raise bad_request(f"invalid selector: '{self.text}'; can't understand '{term}'")
            key, equal, value = m.group(1), m.group(2) != "!=", m.group(3)
            key = key.strip()
            if key not in fields:
                raise bad_request(f"field label not supported: {key}")
            self._terms.append(_FieldTerm(field=key, equal=equal, value=_unescape(value.strip())))

    def value(self, field: str) -> str | None:
        """The value required by an ``field=value`` term, if there is one."""
        for t in self._terms:
            if t.field == field and t.equal:
                return t.value
        return None

    def matches(self, obj: object) -> bool:
        return all((self._fields[t.field](obj) == t.value) == t.equal for t in self._terms)
