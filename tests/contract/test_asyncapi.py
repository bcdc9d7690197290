"""docs/asyncapi.yaml is generated from the models, is current, and is a self-contained AsyncAPI 3 doc."""

from __future__ import annotations

from typing import Any

import yaml

from hub.contract import COMMANDS, ErrorCode
from hub.contract.asyncapi import ASYNCAPI_PATH, build_asyncapi, render_asyncapi, write_asyncapi
from hub.contract.events import EVENT_KINDS, EVENT_TYPES, EXTENSION_EVENT_TYPES


def test_docs_asyncapi_is_current():
    committed = ASYNCAPI_PATH.read_text(encoding="utf-8") if ASYNCAPI_PATH.is_file() else ""

    assert committed == render_asyncapi(), (
        "docs/asyncapi.yaml is stale: run `storehub contract asyncapi` and commit the result"
    )


def test_rendering_is_deterministic_yaml_of_asyncapi_3():
    text = render_asyncapi()

    assert text == render_asyncapi()
    assert "&id0" not in text, "anchors and aliases make the document hard to read"
    assert yaml.safe_load(text)["asyncapi"] == "3.0.0"
    assert yaml.safe_load(text) == build_asyncapi()


def test_every_command_type_has_a_message_on_the_command_channel():
    doc = build_asyncapi()
    channel = doc["channels"]["command"]["messages"]
    messages = doc["components"]["messages"]

    for cmd_type, model in COMMANDS.items():
        assert f"command.{cmd_type}" in channel
        envelope, refinement = messages[f"command.{cmd_type}"]["payload"]["allOf"]
        assert envelope == {"$ref": "#/components/schemas/CommandEnvelope"}
        assert refinement["properties"]["type"] == {"const": cmd_type}
        assert refinement["properties"]["body"] == {"$ref": f"#/components/schemas/{model.__name__}"}


def test_every_event_type_has_a_message_on_the_event_channel():
    doc = build_asyncapi()
    channel = doc["channels"]["event"]
    messages = doc["components"]["messages"]

    assert [f"event.{t}" for t in EVENT_TYPES] == list(channel["messages"])
    assert doc["components"]["parameters"]["kind"]["enum"] == list(EVENT_KINDS)
    extensions = {t for t in EVENT_TYPES if "tags" in messages[f"event.{t}"]}
    assert extensions == EXTENSION_EVENT_TYPES


def test_every_topic_of_the_contract_is_a_channel():
    addresses = {channel["address"] for channel in build_asyncapi()["channels"].values()}

    assert addresses == {
        f"storehub/v1/{{store}}/{topic}"
        for topic in (
            "hub/status",
            "device/{device}/status",
            "cmd/{device}",
            "reply/{device}",
            "event/{kind}",
            "kds/{station}",
            "state/shift",
            "state/menu",
            "state/availability",
            "state/printer/{printer}",
            "state/staff",
            "device/{device}/do",
        )
    }


def test_commands_are_answered_on_the_reply_channel():
    operation = build_asyncapi()["operations"]["receiveCommand"]

    assert operation["action"] == "receive"
    assert operation["reply"]["channel"] == {"$ref": "#/channels/reply"}
    assert operation["bindings"]["mqtt"]["messageExpiryInterval"] == 30


def test_error_codes_are_enumerated():
    schema = build_asyncapi()["components"]["schemas"]["ErrorCode"]

    assert schema["enum"] == [code.value for code in ErrorCode]


def test_every_ref_resolves_inside_the_document():
    doc = yaml.safe_load(render_asyncapi())
    refs = list(_refs(doc))

    assert len(refs) > 100
    for ref in refs:
        assert ref.startswith("#/"), ref
        node: Any = doc
        for part in ref[2:].split("/"):
            key = part.replace("~1", "/").replace("~0", "~")
            assert isinstance(node, dict), ref
            assert key in node, f"{ref} does not resolve"
            node = node[key]


def test_write_reports_whether_the_file_changed(tmp_path):
    path = tmp_path / "asyncapi.yaml"

    assert write_asyncapi(path) is True
    assert write_asyncapi(path) is False
    assert path.read_text(encoding="utf-8") == render_asyncapi()


def _refs(node: Any):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_docs_contract_lists_every_extension_event_type():
    contract = (ASYNCAPI_PATH.parent / "contract.md").read_text(encoding="utf-8")
    extensions = contract.split("## Extensions in this implementation", 1)[1]

    for event_type in EXTENSION_EVENT_TYPES:
        assert f"`{event_type}`" in extensions
