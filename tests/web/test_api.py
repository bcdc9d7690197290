"""The manager page's JSON API against a real hub: CSRF, roles, sessions, pairing, revoke, lockout."""

from __future__ import annotations

import json
import re
import socket
import ssl
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.sim.tablet import Credentials, DeviceError, SimTablet
from firmware_tools.ota import generate_key, load_private_key, sign
from firmware_tools.server import FirmwareStore, manifest_json
from hub.ports import free_port
from tests.hubproc import STAFF, HubProcess, storehub, write_config
from tests.mqtt_helpers import MqttClient
from tests.web.conftest import prelogin_csrf

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from tests.web.conftest import WebHub

pytestmark = pytest.mark.e2e


def eventually(check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    """Poll until `check()` is truthy (generous: other suites share the cores); never a timed assertion."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


@pytest.fixture
def manager(web_hub: WebHub) -> Iterator[tuple[httpx.Client, dict[str, str]]]:
    with web_hub.client() as client:
        csrf = web_hub.login(client, *STAFF["mgr"])
        yield client, {"X-CSRF-Token": csrf}


def test_service_endpoints(web_hub: WebHub) -> None:
    with web_hub.client() as client:
        health = client.get("/healthz")
        assert health.status_code == 200
        assert health.json()["broker_connected"] is True
        metrics = client.get("/metrics")
        assert metrics.status_code == 200
        assert "storehub_ledger_seq " in metrics.text
        assert "storehub_web_requests_total" in metrics.text
        spec = client.get("/openapi.json").json()
        assert "/api/pair" in spec["paths"]
        assert "/api/shift/close" in spec["paths"]
        assert client.get("/api/dashboard").status_code == 401


def test_every_post_needs_the_csrf_token(web_hub: WebHub, manager: tuple[httpx.Client, dict[str, str]]) -> None:
    client, headers = manager
    missing = client.post("/api/menu/availability", json={"menu_item_id": "espresso", "available": False})
    assert missing.status_code == 403
    assert missing.json()["error"]["code"] == "csrf"
    wrong = client.post(
        "/api/menu/availability",
        json={"menu_item_id": "espresso", "available": False},
        headers={"X-CSRF-Token": "not-the-token"},
    )
    assert wrong.status_code == 403
    board = {i["menu_item_id"]: i for i in client.get("/api/menu/availability").json()}
    assert board["espresso"]["available"] is True  # nothing happened
    with web_hub.client() as stranger:  # a login without the pre-login token is refused too
        refused = stranger.post("/api/login", json={"employee_id": STAFF["mgr"][0], "pin": STAFF["mgr"][1]})
        assert refused.status_code == 403
    assert client.post("/api/logout").status_code == 403
    assert client.get("/api/me", headers=headers).status_code == 200


def test_other_roles_get_a_read_only_floor(web_hub: WebHub) -> None:
    with web_hub.client() as client:
        csrf = web_hub.login(client, *STAFF["server"])
        assert client.get("/api/me").json()["read_only"] is True
        assert client.get("/api/dashboard").status_code == 200
        assert client.get("/api/staff").status_code == 403
        refused = client.post(
            "/api/menu/availability",
            json={"menu_item_id": "espresso", "available": False},
            headers={"X-CSRF-Token": csrf},
        )
        assert refused.status_code == 403
        page = client.get("/", headers={"Accept": "text/html"})
        assert "(read-only)" in page.text
        assert "Orders" not in page.text
        assert client.get("/staff", headers={"Accept": "text/html"}).status_code == 403


def test_shift_actions_are_ledgered_with_the_manager_as_actor(
    web_hub: WebHub, manager: tuple[httpx.Client, dict[str, str]]
) -> None:
    client, headers = manager
    opened = client.post("/api/shift/open", json={"opening_float": 10000}, headers=headers)
    assert opened.status_code == 200, opened.text
    shift_id = opened.json()["shift_id"]
    keyed = headers | {"Idempotency-Key": "payin-1"}
    for _ in range(2):  # a double-click with the same key pays in once
        moved = client.post(
            "/api/shift/cash", json={"kind": "pay_in", "amount": 500, "reason": "change"}, headers=keyed
        )
        assert moved.status_code == 200, moved.text
    bad = client.post("/api/shift/cash", json={"kind": "pay_in", "amount": -5, "reason": "x"}, headers=headers)
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "invalid_payload"
    assert client.post("/api/shift/no_sale", json={"reason": "change for a 50"}, headers=headers).status_code == 200
    x = client.get(f"/api/shifts/{shift_id}/report", params={"kind": "x"}).json()
    assert x["cash"]["pay_in"] == 500
    assert "expected" not in x["cash"]  # blind until the count
    entries = client.get("/api/ledger", params={"after": 0, "limit": 500}).json()
    mine = [e for e in entries if e["type"] in ("shift.opened", "shift.cash_moved", "drawer.opened")]
    assert [e["type"] for e in mine] == ["shift.opened", "shift.cash_moved", "drawer.opened"]
    assert {e["actor"] for e in mine} == {STAFF["mgr"][0]}
    assert {e["device"] for e in mine} == {"web"}
    verified = client.post("/api/ledger/verify", headers=headers).json()
    assert verified["ok"] is True
    assert verified["entries"] == verified["head_seq"]
    z = client.post("/api/shift/close", json={"counted_cash": 10400}, headers=headers)
    assert z.status_code == 200, z.text
    assert z.json()["cash"]["expected"] == 10500
    assert z.json()["cash"]["over_short"] == -100
    closed = client.post("/api/shift/cash", json={"kind": "drop", "amount": 100, "reason": "late"}, headers=headers)
    assert closed.status_code == 409
    assert closed.json()["error"]["code"] == "shift_closed"


def test_logout_ends_the_staff_session_and_a_revoked_web_device_comes_back(web_hub: WebHub) -> None:
    with web_hub.client() as client:
        csrf = web_hub.login(client, *STAFF["cashier"])
        assert client.post("/api/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
        assert client.get("/api/me").status_code == 401
        ended = client.get("/api/dashboard", headers={"Accept": "text/html"}, follow_redirects=False)
        assert ended.status_code == 401
    storehub("device", "revoke", "web", "--config", str(web_hub.proc.config))  # an operator's mistake
    with web_hub.client() as client:
        web_hub.login(client, *STAFF["cashier"])  # the page registers itself again
        assert client.get("/api/me").json()["employee_id"] == STAFF["cashier"][0]


def test_printers_panel_previews_reprints_and_refuses_bad_reroutes(
    web_hub: WebHub, manager: tuple[httpx.Client, dict[str, str]]
) -> None:
    client, headers = manager
    if not client.get("/api/shift").json()["current"].get("open"):
        assert client.post("/api/shift/open", json={"opening_float": 1000}, headers=headers).status_code == 200
    tablet = web_hub.proc.tablet("tab-print")
    try:
        token = tablet.login(*STAFF["server"])
        assert tablet.call("ticket.open", {"ticket_id": "tk-print", "channel": "takeout"}, auth=token)["ok"]
        items = [{"line_id": "tk-print-a", "menu_item_id": "espresso", "qty": 1}]
        assert tablet.call("ticket.add_items", {"ticket_id": "tk-print", "items": items}, auth=token)["ok"]
    finally:
        tablet.close()
    check = client.post("/api/tickets/tk-print/reprint", headers=headers)  # an open ticket prints its check
    assert check.status_code == 200, check.text

    def printed_check() -> dict[str, Any] | None:
        jobs = client.get("/api/printers").json()["jobs"]
        return next((j for j in jobs if j["ticket_id"] == "tk-print" and j["state"] == "printed"), None)

    job = eventually(printed_check, "the check printed on the virtual printer")
    assert job["kind"] == "check"
    printers = client.get("/api/printers").json()["printers"]
    assert [p["printer"] for p in printers] == ["front-1"]
    png = client.get(f"/api/printers/jobs/{job['job_id']}/preview.png")
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")
    assert client.get("/api/printers/jobs/job-nope/preview.png").status_code == 404
    again = client.post(f"/api/printers/jobs/{job['job_id']}/reprint", headers=headers)
    assert again.status_code == 200, again.text
    late = client.post(
        f"/api/printers/jobs/{job['job_id']}/reroute", json={"to": "front-1", "reason": "test"}, headers=headers
    )
    assert late.status_code == 409
    assert "already printed" in late.json()["error"]["message"]


def test_a_deactivated_employee_is_logged_out_at_once(
    web_hub: WebHub, manager: tuple[httpx.Client, dict[str, str]]
) -> None:
    client, headers = manager
    added = client.post(
        "/api/staff",
        json={"employee_id": "emp-nina", "name": "Nina", "role": "manager", "pin": "5271"},
        headers=headers,
    )
    assert added.status_code == 200, added.text
    with web_hub.client() as nina:
        web_hub.login(nina, "emp-nina", "5271")
        assert nina.get("/api/me").status_code == 200
        assert client.post("/api/staff/emp-nina/deactivate", headers=headers).status_code == 200
        assert nina.get("/api/me").status_code == 401
    again = client.post("/api/staff/emp-nina/deactivate", headers=headers)
    assert again.status_code == 409
    people = {p["employee_id"]: p for p in client.get("/api/staff").json()}
    assert people["emp-nina"]["active"] is False
    weak = client.post("/api/staff/emp-hugo/pin", json={"pin": "12"}, headers=headers)
    assert weak.status_code == 422


def _pair(web_hub: WebHub, *args: str) -> str:
    out = storehub("device", "pair", "--config", str(web_hub.proc.config), *args)
    return str(json.loads(out.stdout.strip().splitlines()[-1])["code"])


def test_pairing_end_to_end_and_revoke_kicks_the_device(
    web_hub: WebHub, manager: tuple[httpx.Client, dict[str, str]]
) -> None:
    client, headers = manager
    code = _pair(web_hub, "--kind", "tablet")
    with web_hub.client() as device:
        mismatch = device.post(
            "/api/pair", json={"code": code, "device_id": "kds-x", "kind": "kds", "stations": ["grill"]}
        )
        assert mismatch.status_code == 409  # the code was made for a tablet; it stays usable
        paired = device.post("/api/pair", json={"code": code, "device_id": "tab-paired", "kind": "tablet"})
        assert paired.status_code == 201, paired.text
        creds = paired.json()
        assert creds["broker"]["port"] == web_hub.proc.port
        assert creds["store"] == web_hub.proc.store_id
        reuse = device.post("/api/pair", json={"code": code, "device_id": "tab-other", "kind": "tablet"})
        assert reuse.status_code == 403
        assert "already used" in reuse.json()["error"]["message"]

    tablet = SimTablet(
        creds["store"],
        Credentials(creds["device_id"], creds["username"], creds["password"]),
        port=creds["broker"]["port"],
    ).connect()
    try:
        assert tablet.login(*STAFF["server"])  # its own credentials work end to end

        def presence() -> str | None:
            devices = {d["device_id"]: d for d in client.get("/api/devices").json()["devices"]}
            found = devices.get("tab-paired", {}).get("presence")
            return str(found) if found is not None else None

        eventually(lambda: presence() == "online", "the paired tablet shows online")
        revoked = client.post("/api/devices/tab-paired/revoke", headers=headers)
        assert revoked.status_code == 200, revoked.text
        eventually(lambda: not tablet.client.is_connected(), "the broker dropped the revoked tablet")
        with pytest.raises(DeviceError):
            SimTablet(
                creds["store"], Credentials("tab-paired", "tab-paired", creds["password"]), port=creds["broker"]["port"]
            ).connect(timeout=3)
    finally:
        tablet.client.disconnect()
        tablet.client.loop_stop()
    assert client.post("/api/devices/web/revoke", headers=headers).status_code == 409


def test_expired_and_wrong_codes_are_refused(web_hub: WebHub, manager: tuple[httpx.Client, dict[str, str]]) -> None:
    client, headers = manager
    issued = client.post("/api/devices/pair-code", json={"kind": "kds", "stations": ["grill"]}, headers=headers)
    assert issued.status_code == 200
    code = issued.json()["code"]
    # The fixture's codes live 2 s (`[web] pair_code_ttl_s`): wait until the hub dropped it.
    eventually(lambda: code not in {c["code"] for c in client.get("/api/devices").json()["codes"]}, "code expiry", 20)
    with web_hub.client() as device:
        late = device.post(
            "/api/pair", json={"code": code, "device_id": "kds-late", "kind": "kds", "stations": ["grill"]}
        )
        assert late.status_code == 403
        malformed = device.post("/api/pair", json={"code": "12ab", "device_id": "x", "kind": "tablet"})
        assert malformed.status_code == 422
        statuses = [
            device.post("/api/pair", json={"code": f"{n:06d}", "device_id": "guess", "kind": "tablet"}).status_code
            for n in range(6)
        ]
        assert statuses[-1] == 429  # guessing codes gets the client locked out
    assert client.post("/api/devices/pair-code", json={"kind": "kds"}, headers=headers).status_code == 422


def test_hq_panel_shows_the_relay_status(web_hub: WebHub, manager: tuple[httpx.Client, dict[str, str]]) -> None:
    client, _ = manager
    assert client.get("/api/hq").json()["configured"] is False
    creds = web_hub.proc.add_device("relay", kind="relay")
    relay = SimTablet(web_hub.proc.store_id, creds, port=web_hub.proc.port, kind="relay").connect()
    try:
        status = {
            "state": "online",
            "sess": 1,
            "kind": "relay",
            "cursor": 7,
            "head": 9,
            "backlog": 2,
            "lag_s": 1.5,
            "last_error": "central answered 503",
            "halted": False,
        }
        relay.client.publish(relay.topics.device_status("relay"), json.dumps(status), qos=1, retain=True)
        hq = eventually(
            lambda: (h := client.get("/api/hq").json())["status"] and h["status"].get("cursor") == 7 and h,
            "the relay's status reached the page",
        )
        assert hq["configured"] is True
        page = client.get("/hq", headers={"Accept": "text/html"}).text
        assert "central answered 503" in page
        assert "2 entries behind" in page
    finally:
        relay.close()


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


def test_the_api_never_answers_5xx(web_hub: WebHub, manager: tuple[httpx.Client, dict[str, str]]) -> None:
    """Hypothesis against the API's own OpenAPI document: whatever arrives, never a 5xx.

    Bodies are built from each operation's schema (valid values mixed with arbitrary JSON), path and
    query parameters are arbitrary text; every refusal must be a clear `{"error": {"code", "message"}}`.
    """
    client, headers = manager
    spec = client.get("/openapi.json").json()
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

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
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


def test_wrong_pins_lock_the_login_out(web_hub: WebHub) -> None:
    """Last in the module: the employee stays locked out for a while (the engine's own rule too)."""
    with web_hub.client() as client:
        pre = prelogin_csrf(client)
        codes = []
        for _ in range(6):
            reply = client.post(
                "/api/login", json={"employee_id": STAFF["cashier"][0], "pin": "9999"}, headers={"X-CSRF-Token": pre}
            )
            codes.append(reply.status_code)
        assert codes[:5] == [401] * 5
        assert codes[5] == 429
        right = client.post(
            "/api/login",
            json={"employee_id": STAFF["cashier"][0], "pin": STAFF["cashier"][1]},
            headers={"X-CSRF-Token": pre},
        )
        assert right.status_code == 429
        assert "try again" in right.json()["error"]["message"]


def test_a_taken_web_port_never_stops_the_hub(tmp_path: Path) -> None:
    config = write_config(tmp_path / "store")
    config.write_text(config.read_text(encoding="utf-8") + "\n[web]\nbind_retry_s = 0.2\n", encoding="utf-8")
    port = int(re.findall(r"web_port = (\d+)", config.read_text(encoding="utf-8"))[0])
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", port))
    squatter.listen(1)
    hub = HubProcess(config)
    try:
        hub.start()  # ready: control socket answers, broker connected
        assert f"cannot listen on 127.0.0.1:{port}" in hub.log_tail()
        status = json.loads(storehub("hub", "status", "--config", str(config)).stdout)
        assert status["web"]["serving"] is False
        assert "cannot listen" in status["web"]["error"]
        squatter.close()
        eventually(lambda: _healthy(f"http://127.0.0.1:{port}"), "the page bound once the port was free")
        status = json.loads(storehub("hub", "status", "--config", str(config)).stdout)
        assert status["web"]["serving"] is True
    finally:
        squatter.close()
        hub.stop()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_device_pair_refuses_clearly_without_a_hub(tmp_path: Path) -> None:
    config = write_config(tmp_path / "store")
    missing = storehub("device", "pair", "--config", str(config), check=False)
    assert missing.returncode == 2
    assert "no hub is running" in missing.stderr
    bare_kds = storehub("device", "pair", "--config", str(config), "--kind", "kds", check=False)
    assert bare_kds.returncode == 2
    assert "--stations" in bare_kds.stderr


def test_with_tls_the_page_is_https_and_pairing_hands_out_the_store_ca(tmp_path: Path) -> None:
    config = write_config(tmp_path / "store")
    tls_port = free_port()
    text = config.read_text(encoding="utf-8")
    config.write_text(
        f'[tls]\nenabled = true\nmqtt_port = {tls_port}\nnames = ["localhost", "127.0.0.1"]\n\n{text}',
        encoding="utf-8",
    )
    port = int(re.findall(r"web_port = (\d+)", text)[0])
    hub = HubProcess(config).start()
    try:
        ca = hub.data_dir / "tls" / "ca.crt"
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=ssl.create_default_context(cafile=ca)) as web:
            assert web.get("/healthz").status_code == 200
            offer = json.loads(storehub("device", "pair", "--config", str(config), "--kind", "tablet").stdout)
            assert offer["pair_url"].startswith("https://")
            paired = web.post("/api/pair", json={"code": offer["code"], "device_id": "tab-tls", "kind": "tablet"})
            assert paired.status_code == 201, paired.text
        creds = paired.json()
        broker = creds["broker"]
        assert broker["tls_port"] == tls_port
        assert broker["ca_cert"] == ca.read_text(encoding="ascii")
        assert broker["ca_sha256"] == offer["ca_sha256"]  # the device can check the CA against the code's screen
        (tmp_path / "ca-from-pairing.crt").write_text(broker["ca_cert"], encoding="ascii")
        client = MqttClient(broker["tls_port"], creds["username"], creds["password"], host="127.0.0.1")
        client.paho.tls_set(ca_certs=str(tmp_path / "ca-from-pairing.crt"), cert_reqs=ssl.CERT_REQUIRED)
        try:
            assert not client.connect(timeout=5).is_failure
        finally:
            client.close()
        with pytest.raises(httpx.HTTPError):  # plain HTTP is not served once TLS is on
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    finally:
        hub.stop()


def test_the_hub_serves_signed_firmware_releases(web_hub: WebHub, tmp_path: Path) -> None:
    key_path = tmp_path / "ota.pem"
    public = generate_key(key_path)
    image = tmp_path / "drawer-1.2.0.bin"
    image.write_bytes(b"\x7fFIRMWARE" * 100)
    manifest = sign(
        image.read_bytes(), kind="drawer", version="1.2.0", min_version="1.0.0", key=load_private_key(key_path)
    )
    manifest_file = tmp_path / "drawer-1.2.0.bin.manifest.json"
    manifest_file.write_text(manifest_json(manifest), encoding="utf-8")
    FirmwareStore(web_hub.proc.data_dir / "firmware").add(image, manifest_file, public)
    with web_hub.client() as device:  # devices download without a login; the signature is what counts
        releases = device.get("/firmware").json()
        assert [(r["device_kind"], r["version"]) for r in releases] == [("drawer", "1.2.0")]
        got = device.get("/firmware/drawer/1.2.0/image")
        assert got.status_code == 200
        assert got.content == image.read_bytes()
        assert got.headers["X-Firmware-Sha256"] == manifest.sha256
        missing = device.get("/firmware/drawer/9.9.9/manifest.json")
        assert missing.status_code == 404
        assert missing.json()["error"] == {"code": "not_found", "message": "no firmware 9.9.9 for drawer"}
