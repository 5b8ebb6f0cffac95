"""The Kubernetes API on a real socket: Tables, selectors, watches, logs, the write switch, the
body limit, per-client watch limits and the audit log. kubectl's own use is in tests/e2e."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request
from pydantic import JsonValue

from minikubelet.api.model import ContainerState, ContainerStateWaiting, ContainerStatus, PodKey
from minikubelet.server.app import ApiSettings, make_app, serve
from minikubelet.server.audit import audit
from minikubelet.server.auth import IDENTITY, Authenticator, Identity
from minikubelet.server.requestinfo import request_info
from minikubelet.server.selectors import LabelSelector
from minikubelet.status.events import EventRecorder
from minikubelet.status.store import StatusStore
from tests.integration.test_server import AUTH, TOKENS, RecordingLogs, entry, running, status

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


class Api:
    def __init__(self, url: str, store: StatusStore, session: aiohttp.ClientSession) -> None:
        self.url = url
        self.store = store
        self.session = session

    async def get(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.session.get(self.url + path, **kwargs) as r:
            return r.status, await r.json()


def put(
    store: StatusStore, name: str, *, labels: dict[str, str] | None = None, ready: bool = True
) -> None:
    e = entry(f"{name}-node1", "default", [name], status(containers=[running(name)], ready=ready))
    if labels:
        e.view.metadata["labels"] = dict[str, JsonValue](labels)
    store.put(PodKey(f"default/{name}-node1"), e)


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    store = StatusStore(None)
    put(store, "web", labels={"app": "web", "tier": "front"})
    put(store, "db", labels={"app": "db"})
    logs = RecordingLogs()
    logs.content[("default", "web-node1", "web", False)] = [b"one\ntwo\n", b"three\n"]
    app = make_app(
        store=store,
        events=EventRecorder(node_name="node1"),
        logs=logs,
        tokens=TOKENS,
        settings=ApiSettings(max_watches_per_client=2),
    )
    server = await serve(app, "127.0.0.1", 0, shutdown_timeout=0.2)
    try:
        async with aiohttp.ClientSession(headers=AUTH) as session:
            yield Api(server.url, store, session)
    finally:
        await server.cleanup()


async def test_pod_list_is_json_or_a_table_as_asked(api: Api) -> None:
    status_code, body = await api.get("/api/v1/namespaces/default/pods")
    assert status_code == 200 and body["kind"] == "PodList"
    assert [p["metadata"]["name"] for p in body["items"]] == ["db-node1", "web-node1"]
    assert int(body["metadata"]["resourceVersion"]) >= max(
        int(p["metadata"]["resourceVersion"]) for p in body["items"]
    )

    _, table = await api.get("/api/v1/namespaces/default/pods", headers={"Accept": TABLE})
    assert (table["kind"], table["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names == ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node",
                     "Nominated Node", "Readiness Gates"]  # fmt: skip
    assert [c["priority"] for c in table["columnDefinitions"]] == [0] * 5 + [1] * 4
    row = table["rows"][1]
    assert row["cells"][:4] == ["web-node1", "1/1", "Running", "0"]
    assert row["object"]["kind"] == "PartialObjectMetadata"
    assert row["object"]["metadata"]["labels"] == {"app": "web", "tier": "front"}

    _, table = await api.get("/api/v1/pods?includeObject=Object", headers={"Accept": TABLE})
    assert table["rows"][0]["object"]["kind"] == "Pod"
    status_code, body = await api.get(
        "/api/v1/pods", headers={"Accept": "application/vnd.kubernetes.protobuf"}
    )
    assert (status_code, body["reason"]) == (406, "NotAcceptable")


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("labelSelector=app%3Dweb", ["web-node1"]),
        ("labelSelector=app+in+(web,db),tier", ["web-node1"]),
        ("labelSelector=!tier", ["db-node1"]),
        ("labelSelector=app!%3Dweb", ["db-node1"]),
        ("fieldSelector=metadata.name%3Ddb-node1", ["db-node1"]),
        ("fieldSelector=status.phase%3DRunning,spec.nodeName%3Dnode1", ["db-node1", "web-node1"]),
        ("fieldSelector=status.phase!%3DRunning", []),
    ],
)
async def test_selectors_filter_pods(api: Api, query: str, names: list[str]) -> None:
    _, body = await api.get(f"/api/v1/pods?{query}")
    assert [p["metadata"]["name"] for p in body["items"]] == names


async def test_bad_selectors_are_400s_and_a_missing_pod_is_404(api: Api) -> None:
    status_code, body = await api.get("/api/v1/pods?fieldSelector=spec.image%3Dx")
    assert (status_code, body["message"]) == (400, "field label not supported: spec.image")
    status_code, body = await api.get("/api/v1/pods?labelSelector=a+in+b")
    assert status_code == 400
    status_code, body = await api.get("/api/v1/namespaces/default/pods/nope")
    assert (status_code, body["reason"], body["message"]) == (
        404,
        "NotFound",
        'pods "nope" not found',
    )
    assert body["details"] == {"name": "nope", "kind": "pods"}


async def read_events(response: aiohttp.ClientResponse, count: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(5):
        while len(events) < count:
            line = await response.content.readline()
            assert line, f"the watch ended after {events}"
            events.append(json.loads(line))
    return events


async def test_watch_from_a_version_streams_changes_and_selector_transitions(api: Api) -> None:
    _, listed = await api.get("/api/v1/namespaces/default/pods?labelSelector=app%3Dweb")
    rv = listed["metadata"]["resourceVersion"]
    url = f"{api.url}/api/v1/namespaces/default/pods?watch=true&resourceVersion={rv}"
    async with api.session.get(url + "&fieldSelector=status.phase%3DRunning") as r:
        assert r.status == 200
        waiting = ContainerStatus(
            name="web",
            state=ContainerState(waiting=ContainerStateWaiting(reason="CrashLoopBackOff")),
        )
        api.store.set_status(
            PodKey("default/web-node1"), status(containers=[running("web", restarts=1)])
        )
        api.store.set_status(
            PodKey("default/web-node1"),
            status(phase="Pending", containers=[waiting], ready=False),
        )
        put(api.store, "new")
        api.store.remove(PodKey("default/new-node1"))
        events = await read_events(r, 4)
    kinds = [(e["type"], e["object"]["metadata"]["name"]) for e in events]
    assert kinds == [
        ("MODIFIED", "web-node1"),
        ("DELETED", "web-node1"),  # it stopped matching status.phase=Running
        ("ADDED", "new-node1"),
        ("DELETED", "new-node1"),
    ]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions) and versions[0] > int(rv)


async def test_watch_without_a_version_starts_with_every_pod_and_a_bookmark(api: Api) -> None:
    url = f"{api.url}/api/v1/pods?watch=1&sendInitialEvents=true&allowWatchBookmarks=true"
    async with api.session.get(url, headers={"Accept": TABLE}) as r:
        events = await read_events(r, 3)
    assert [e["type"] for e in events] == ["ADDED", "ADDED", "BOOKMARK"]
    first, second = events[0]["object"], events[1]["object"]
    assert first["kind"] == "Table" and "columnDefinitions" in first
    assert "columnDefinitions" not in second and second["rows"][0]["cells"][0] == "web-node1"
    bookmark = events[2]["object"]["metadata"]
    assert bookmark["annotations"] == {"k8s.io/initial-events-end": "true"}


async def test_watch_from_a_version_long_gone_is_expired(api: Api) -> None:
    url = f"{api.url}/api/v1/pods?watch=true&resourceVersion=1"
    async with api.session.get(url) as r:
        (event,) = await read_events(r, 1)
    assert event["type"] == "ERROR"
    assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")


async def test_watches_beyond_the_per_client_limit_are_429(api: Api) -> None:
    url = f"{api.url}/api/v1/pods?watch=true"
    async with api.session.get(url) as a, api.session.get(url) as b:
        await read_events(a, 2)
        await read_events(b, 2)
        status_code, body = await api.get("/api/v1/pods?watch=true")
        assert (status_code, body["reason"]) == (429, "TooManyRequests")
        assert "at most 2 watches per client (api.maxWatchesPerClient)" in body["message"]


async def test_watch_ends_after_timeout_seconds(api: Api) -> None:
    async with asyncio.timeout(5):
        async with api.session.get(f"{api.url}/api/v1/pods?watch=true&timeoutSeconds=1") as r:
            body = await r.read()
    assert len(body.splitlines()) == 2  # the two pods, then the end


async def test_pod_log_picks_the_only_container_and_stamps_lines(api: Api) -> None:
    async with api.session.get(f"{api.url}/api/v1/namespaces/default/pods/web-node1/log") as r:
        assert (r.status, await r.text()) == (200, "one\ntwo\nthree\n")
    url = f"{api.url}/api/v1/namespaces/default/pods/web-node1/log?timestamps=true&limitBytes=80"
    async with api.session.get(url) as r:
        lines = (await r.text()).splitlines()
    assert [line.split(" ", 1)[1] for line in lines[:2]] == ["one", "two"]
    assert lines[0].endswith("Z one") and lines[0][4] == "-"
    for query, message in [
        ("container=nope", "container nope is not valid for pod web-node1"),
        ("sinceSeconds=10", "sinceSeconds is not supported"),
        ("previous=true", 'previous terminated container "web" in pod "web-node1" not found'),
    ]:
        status_code, body = await api.get(f"/api/v1/namespaces/default/pods/web-node1/log?{query}")
        assert (status_code, body["reason"]) == (400, "BadRequest")
        assert body["message"].startswith(message)


async def test_writes_are_refused_and_audited_unless_enabled(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="minikubelet.audit")
    async with api.session.delete(f"{api.url}/api/v1/namespaces/default/pods/web-node1") as r:
        assert r.status == 403
        body = await r.json()
    assert body["reason"] == "Forbidden"
    assert body["message"] == (
        'pods "web-node1" is forbidden: User "admin" cannot delete resource "pods" in API group '
        '"" in the namespace "default": writes are disabled on this node (api.writes is false)'
    )
    (record,) = [r for r in caplog.records if r.name == "minikubelet.audit"]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        "audit: admin@127.0.0.1 delete pods default/web-node1: denied: "
        "writes are disabled on this node (api.writes is false)"
    )
    # What is not served is not a write to refuse: 404 as from an API server.
    async with api.session.post(f"{api.url}/apis/apps/v1/namespaces/default/deployments") as r:
        assert r.status == 404


async def test_with_writes_on_unserved_writes_are_405(caplog: pytest.LogCaptureFixture) -> None:
    app = make_app(
        store=StatusStore(None), events=EventRecorder(node_name="n"), logs=RecordingLogs(),
        tokens=TOKENS, settings=ApiSettings(writes=True),
    )  # fmt: skip
    server = await serve(app, "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession(headers=AUTH) as session:
            async with session.post(f"{server.url}/api/v1/namespaces/default/pods") as r:
                assert (r.status, (await r.json())["reason"]) == (405, "MethodNotAllowed")
            async with session.get(f"{server.url}/api/v1") as r:
                pods = next(x for x in (await r.json())["resources"] if x["name"] == "pods")
            assert "create" in pods["verbs"]
    finally:
        await server.cleanup()


async def test_bodies_over_three_mebibytes_are_413(api: Api) -> None:
    big = io.BytesIO(b"x" * (3 * 1024 * 1024 + 1))
    headers = {"Content-Length": str(3 * 1024 * 1024 + 1)}
    async with api.session.post(
        f"{api.url}/api/v1/namespaces/default/pods", data=big, headers=headers
    ) as r:
        assert (r.status, (await r.json())["reason"]) == (413, "RequestEntityTooLarge")


def test_audit_records_who_what_and_when(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="minikubelet.audit")
    request = make_mocked_request("POST", "/api/v1/namespaces/default/pods/web/exec?command=sh")
    request[IDENTITY] = Identity(name="ops", remote="10.0.0.7")
    record = audit(request, allowed=True, detail="exec sh in container app")
    assert (record.who, record.remote, record.verb, record.what, record.allowed) == (
        "ops", "10.0.0.7", "create", "pods/exec default/web", True,
    )  # fmt: skip
    assert record.when.tzinfo is not None
    assert caplog.records[-1].getMessage() == (
        "audit: ops@10.0.0.7 create pods/exec default/web: allowed: exec sh in container app"
    )


def test_request_info_reads_verbs_and_objects_like_the_api_server() -> None:
    info = request_info("GET", "/api/v1/namespaces/ns/pods/web/log")
    assert (info.verb, info.namespace, info.resource, info.name, info.subresource) == (
        "get", "ns", "pods", "web", "log",
    )  # fmt: skip
    assert request_info("GET", "/api/v1/pods", {"watch": "true"}).verb == "watch"
    assert request_info("DELETE", "/api/v1/namespaces/ns/pods").verb == "deletecollection"
    assert request_info("GET", "/api/v1/namespaces/ns").resource == "namespaces"
    assert request_info("POST", "/apis/apps/v1/namespaces/ns/deployments").group == "apps"
    assert request_info("POST", "/api/v1/namespaces/ns/pods/web/exec").changes_something
    assert not request_info("POST", "/api/v1/namespaces/ns/pods/web/portforward").changes_something
    assert not request_info("GET", "/api/v1/namespaces/ns/pods").changes_something
    assert not request_info("POST", "/pods").changes_something


def test_authenticator_names_the_token_and_refuses_anything_else() -> None:
    auth = Authenticator({"a" * 40: "admin", "b" * 40: "viewer"})
    assert auth.identify("Bearer " + "a" * 40) == "admin"
    assert auth.identify("bearer " + "b" * 40) == "viewer"
    for header in (None, "", "Bearer", "Bearer " + "a" * 39, "Basic " + "a" * 40, "a" * 40):
        assert auth.identify(header) is None


def test_label_selector_operators() -> None:
    labels = {"app": "web", "version": "3"}
    assert LabelSelector("app=web,version>2").matches(labels)
    assert not LabelSelector("version<3").matches(labels)
    assert LabelSelector("app notin (db)").matches(labels)
    assert not LabelSelector("app notin (db, web)").matches(labels)
    assert LabelSelector("").matches(labels)
