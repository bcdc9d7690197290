"""Hypothesis against the manager API's own OpenAPI document: whatever arrives, never a 5xx.

Bodies are built from each operation's schema (valid values mixed with arbitrary JSON), path and
query parameters are arbitrary text; every refusal must be a clear `{"error": {"code", "message"}}`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hubproc import STAFF

if TYPE_CHECKING:
    from collections.abc import Iterator

    import httpx

    from tests.web.conftest import WebHub

pytestmark = pytest.mark.e2e
SKIPPED = {"/api/login", "/api/logout"}  # the session under test must survive the run

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=8,
)


def from_schema(schema: dict[str, Any], components: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values that mostly fit `schema` (a small JSON-schema subset), sometimes anything at all."""
    if "$ref" in schema:
        return from_schema(components[schema["$ref"].split("/")[-1]], components, depth)
    if depth > 3:
        return JSON
    options: list[st.SearchStrategy[Any]] = []
    if "enum" in schema:
        options.append(st.sampled_from(schema["enum"]))
    if "const" in schema:
        options.append(st.just(schema["const"]))
    options.extend(from_schema(sub, components, depth + 1) for sub in schema.get("anyOf", []))
    kind = schema.get("type")
    if kind == "integer":
        low, high = schema.get("minimum", schema.get("exclusiveMinimum", -(10**6))), schema.get("maximum", 10**12)
        options.append(st.integers(int(low), int(high)))
    elif kind == "string":
        pattern = schema.get("pattern")
        options.append(
            st.from_regex(pattern, fullmatch=True) if pattern else st.text(max_size=int(schema.get("maxLength", 40)))
        )
    elif kind == "boolean":
        options.append(st.booleans())
    elif kind == "null":
        options.append(st.none())
    elif kind == "array":
        options.append(st.lists(from_schema(schema.get("items", {}), components, depth + 1), max_size=3))
    elif kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        fields = {
            name: (
                from_schema(sub, components, depth + 1)
                if name in required
                else st.none() | from_schema(sub, components, depth + 1)
            )
            for name, sub in props.items()
        }
        options.append(st.fixed_dictionaries(fields).map(lambda d: {k: v for k, v in d.items() if v is not None}))
    options.append(JSON)
    return st.one_of(*options)


@pytest.fixture(scope="module")
def api(web_hub: WebHub) -> Iterator[tuple[httpx.Client, dict[str, str], dict[str, Any]]]:
    with web_hub.client() as client:
        csrf = web_hub.login(client, *STAFF["mgr"])
        assert (
            client.post("/api/shift/open", json={"opening_float": 5000}, headers={"X-CSRF-Token": csrf}).status_code
            == 200
        )
        yield client, {"X-CSRF-Token": csrf}, client.get("/openapi.json").json()


def test_the_api_never_answers_5xx(api: tuple[httpx.Client, dict[str, str], dict[str, Any]], web_hub: WebHub) -> None:
    client, headers, spec = api
    components = spec.get("components", {}).get("schemas", {})
    operations = [
        (path, method, op)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        if path not in SKIPPED and path.startswith("/api/")
    ]
    assert len(operations) >= 25

    @st.composite
    def requests(draw: st.DrawFn) -> tuple[str, str, dict[str, Any], Any]:
        path, method, op = draw(st.sampled_from(operations))
        params: dict[str, Any] = {}
        for param in op.get("parameters", []):
            if param["in"] == "path":
                value = draw(
                    st.one_of(from_schema(param.get("schema", {}), components), st.text(min_size=1, max_size=30))
                )
                path = path.replace("{" + param["name"] + "}", quote(str(value), safe="") or "x")
            elif param["in"] == "query" and draw(st.booleans()):
                params[param["name"]] = str(draw(from_schema(param.get("schema", {}), components)))
        body = None
        if "requestBody" in op:
            schema = op["requestBody"]["content"]["application/json"]["schema"]
            body = draw(from_schema(schema, components))
        return method.upper(), path, params, body

    state = {"csrf": headers}

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(requests())
    def check(request: tuple[str, str, dict[str, Any], Any]) -> None:
        method, path, params, body = request
        reply = client.request(method, path, params=params, json=body, headers=state["csrf"])
        assert reply.status_code < 500, f"{method} {path} {body!r} -> {reply.status_code} {reply.text[:300]}"
        if reply.status_code >= 400:
            error = reply.json()["error"]
            assert error["code"]
            assert error["message"]
        if reply.status_code == 401:  # e.g. the manager's own role was changed: log in again
            state["csrf"] = {"X-CSRF-Token": web_hub.login(client, *STAFF["mgr"])}

    check()
