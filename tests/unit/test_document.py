"""Manifest bytes become one object within bounds, or an error that says which bound and where."""

from __future__ import annotations

import json
import textwrap

import pytest

from minikubelet.api.document import (
    MAX_DEPTH,
    MAX_MANIFEST_BYTES,
    MAX_VALUES,
    load_document,
)
from minikubelet.api.errors import ErrorType, ManifestError
from tests.manifest_strategies import abusive_manifests, billion_laughs

SOURCE = "manifests/web.yaml"
HEAD = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\n"


def _error(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    with pytest.raises(ManifestError) as info:
        load_document(raw, source=SOURCE)
    (line,) = info.value.lines()
    return line


def test_an_alias_bomb_is_refused_where_it_expands_without_being_expanded():
    bomb = billion_laughs()  # ~600 bytes that stand for 10^9 values
    assert len(bomb) < 1000
    line = _error(bomb)
    assert line.startswith(f"{SOURCE}: x3[7]: Too many: must have at most {MAX_VALUES} values")


@pytest.mark.parametrize(
    ("name", "where"),
    [
        ("alias-bomb", "x3[7]: Too many"),
        ("merge-bomb", "m10.<<[0]: Too many"),
        ("text-bomb", "spec.containers[0].args[1]: Too long"),
        ("wide", "spec.affinity[9982]: Too many"),
        ("deep", "spec.affinity[0][0][0]"),
        ("cycle", "spec.affinity: Invalid value: an alias may not refer"),
    ],
)
def test_each_abusive_manifest_is_refused_naming_where(name, where):
    assert where in _error(abusive_manifests(MAX_MANIFEST_BYTES)[name])


def test_merge_keys_that_double_at_every_level_are_refused():
    merges = "".join(f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: 1}}\n" for i in range(1, 30))
    line = _error(HEAD + "m0: &m0 {a: 1, b: 2}\n" + merges)
    assert f"Too many: must have at most {MAX_VALUES} values" in line


def test_aliases_that_repeat_a_long_string_are_refused_by_the_text_they_add_up_to():
    big = "x" * (MAX_MANIFEST_BYTES // 2)
    line = _error(HEAD + f"x: &s {big}\nspec: {{affinity: [*s, *s, *s]}}\n")
    assert line == (
        f"{SOURCE}: spec.affinity[0]: Too long: aliases may not repeat the manifest's text beyond "
        f"{MAX_MANIFEST_BYTES} characters in all"
    )


def test_an_alias_to_an_enclosing_value_is_refused():
    line = _error(HEAD + "spec: {affinity: &a [1, *a]}\n")
    assert line == (
        f"{SOURCE}: spec.affinity[1]: Invalid value: an alias may not refer to a value that "
        "contains it"
    )


def test_aliases_within_the_bounds_are_expanded():
    doc = load_document(
        (HEAD + "env: &env [{name: A, value: a}]\nspec: {a: *env, b: *env}\n").encode(),
        source=SOURCE,
    )
    assert doc.value["spec"] == {
        "a": [{"name": "A", "value": "a"}],
        "b": [{"name": "A", "value": "a"}],
    }


@pytest.mark.parametrize("form", ["yaml flow", "yaml block", "json"])
def test_too_many_values_stop_the_parse_at_the_limit_with_the_path(form):
    items = ["1"] * (MAX_VALUES + 1)
    if form == "yaml flow":
        text = HEAD + "spec: {affinity: [" + ", ".join(items) + "]}\n"
    elif form == "yaml block":
        text = HEAD + "spec:\n  affinity:\n" + "".join(f"  - {i}\n" for i in items)
    else:
        text = json.dumps({"kind": "Pod", "spec": {"affinity": [1] * (MAX_VALUES + 1)}})
    line = _error(text)
    assert line.startswith(f"{SOURCE}: spec.affinity[")
    assert f"Too many: must have at most {MAX_VALUES} values" in line


@pytest.mark.parametrize("form", ["yaml", "json"])
def test_deep_nesting_is_refused_with_the_path(form):
    nested = "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5)
    if form == "yaml":
        line = _error(HEAD + f"spec: {{affinity: {nested}}}\n")
    else:
        line = _error('{"kind": "Pod", "spec": {"affinity": ' + nested + "}}")
    assert line.startswith(f"{SOURCE}: spec.affinity[0][0]")
    assert line.endswith(f"Invalid value: must not nest more than {MAX_DEPTH} levels deep")


def test_nesting_beyond_what_json_or_libyaml_can_read_is_a_parse_error():
    line = _error('{"spec": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert "error parsing YAML" in line
    assert "exceeded maximum nesting depth" in line


def test_a_manifest_over_one_mebibyte_is_refused():
    line = _error(HEAD + "x: " + "a" * MAX_MANIFEST_BYTES + "\n")
    assert line == f"{SOURCE}: Too long: may not be more than {MAX_MANIFEST_BYTES} bytes (1 MiB)"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("x: " + "9" * 5000, "9" * 5000),  # int() would raise over 4300 digits
        ("x: 1" + ":1" * 40, "1" + ":1" * 40),  # base 60: quadratic as an int()
        ("x: 123", 123),
    ],
)
def test_long_integer_literals_stay_strings(text, value):
    assert load_document((HEAD + text + "\n").encode(), source=SOURCE).value["x"] == value


def test_a_json_integer_of_thousands_of_digits_is_read_as_yaml():
    doc = load_document(('{"kind": "Pod", "x": ' + "7" * 5000 + "}").encode(), source=SOURCE)
    assert doc.value["x"] == "7" * 5000


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("x: !!int abc", "line 4, column 4: cannot read 'abc' as !!int"),
        ("x: !!float abc", "cannot read 'abc' as !!float"),
        ("x: !!timestamp abc", "cannot read 'abc' as !!timestamp"),
        ("x: !!bool maybe", "cannot read 'maybe' as !!bool"),
        ("x: !!int ''", "cannot read '' as !!int"),
    ],
)
def test_explicitly_tagged_scalars_that_do_not_parse_are_yaml_errors(text, problem):
    line = _error(HEAD + text + "\n")
    assert line.startswith(f"{SOURCE}: Invalid value: error parsing YAML: ")
    assert problem in line


def test_nul_characters_and_unpaired_surrogates_are_errors_at_their_field():
    doc = {
        "kind": "Pod",
        "spec": {"containers": [{"args": ["a\x00b"], "env": [{"name": "X", "value": "\ud800"}]}]},
        "metadata": {"labels": {"k\x00": "v"}},
    }
    raw = json.dumps(doc).encode()
    loaded = load_document(raw, source=SOURCE)
    assert [str(e) for e in loaded.errors] == [
        'spec.containers[0].args[0]: Invalid value: "a\\u0000b": must not contain a NUL character',
        'spec.containers[0].env[0].value: Invalid value: "\\ufffd": must be valid Unicode (no '
        "unpaired surrogate)",
        'metadata.labels: Invalid value: "k\\u0000": a key must not contain a NUL character',
    ]
    # Replaced, so that later stages still run: no surrogate survives.
    assert loaded.value["spec"]["containers"][0]["env"][0]["value"] == "\ufffd"


def test_yaml_escapes_reach_the_nul_check_too():
    loaded = load_document((HEAD + 'spec: {workingDir: "/tmp\\0"}\n').encode(), source=SOURCE)
    assert [e.path for e in loaded.errors] == ["spec.workingDir"]
    assert loaded.errors[0].type is ErrorType.INVALID


def test_a_normal_manifest_loads_unchanged():
    text = textwrap.dedent(
        """\
        apiVersion: v1
        kind: Pod
        metadata: {name: web, labels: {day: 2024-01-01}}
        spec:
          containers:
          - {name: web, args: ["1e3", 1e3, 0x10]}
        """
    )
    doc = load_document(text.encode(), source=SOURCE)
    assert doc.errors == []
    assert doc.value["metadata"] == {"name": "web", "labels": {"day": "2024-01-01"}}
    assert doc.value["spec"]["containers"][0]["args"] == ["1e3", "1e3", 16]
