"""The AsyncAPI 3.0.0 document of contract v1, generated from the contract's models and topics.

`docs/asyncapi.yaml` is this module's output; `storehub contract asyncapi` regenerates it and a
test fails when it is stale. The document describes the hub: `send` is what the hub publishes,
`receive` what it subscribes to.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import yaml
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema

from hub.contract.commands import COMMANDS
from hub.contract.envelopes import (
    MAX_PAYLOAD_BYTES,
    CommandEnvelope,
    DeviceJob,
    DeviceStatus,
    EventEnvelope,
    HubStatus,
    Reply,
)
from hub.contract.errors import NOT_REMEMBERED
from hub.contract.events import EVENT_DESCRIPTIONS, EVENT_KINDS, EXTENSION_EVENT_TYPES
from hub.contract.kds import KdsMessage
from hub.contract.menu import Menu
from hub.contract.state import AvailabilityState, PrinterState, ShiftState, StaffList
from hub.contract.topics import Topics

if TYPE_CHECKING:
    from pydantic import BaseModel
    from pydantic_core import core_schema

ASYNCAPI_PATH: Final = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"
"""Where the generated document lives in a source checkout."""


def build_asyncapi() -> dict[str, Any]:
    """Build the AsyncAPI document: deterministic, with every `$ref` inside it."""
    schemas, ref = _schemas()
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "StoreHub store hub", "version": "1", "description": _DESCRIPTION},
        "defaultContentType": "application/json",
        "servers": {
            "broker": {
                "host": "{host}:{port}",
                "protocol": "mqtt",
                "protocolVersion": "5",
                "description": "The store's Mosquitto broker; MQTT 3.1.1 is accepted too.",
                "variables": {
                    "host": {"default": "localhost", "description": "Given by pairing (`broker.host`)."},
                    "port": {"default": "1883", "description": "Given by pairing (`broker.port`)."},
                },
                "security": [{"$ref": "#/components/securitySchemes/device"}],
            }
        },
        "channels": {c.key: c.channel() for c in _CHANNELS},
        "operations": {c.operation_id: c.operation() for c in _CHANNELS if c.action},
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "messages": dict(sorted(_messages(ref).items())),
            "parameters": dict(sorted(_PARAMETERS.items())),
            "correlationIds": {
                "commandId": {
                    "description": "The command's `id`, echoed by its reply.",
                    "location": "$message.payload#/id",
                }
            },
            "securitySchemes": {
                "device": {
                    "type": "userPassword",
                    "description": "The device id as client id and username, the password from pairing.",
                }
            },
        },
    }


def render_asyncapi() -> str:
    """Render the document as YAML, exactly as `docs/asyncapi.yaml` holds it."""
    body = yaml.dump(build_asyncapi(), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    return _HEADER + body


def write_asyncapi(path: Path = ASYNCAPI_PATH) -> bool:
    """Write the rendered document to `path`; return True if the file changed."""
    text = render_asyncapi()
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True


_HEADER: Final = "# Generated from hub/contract by `storehub contract asyncapi`. Do not edit.\n"


class _Dumper(yaml.SafeDumper):
    """YAML's safe dumper, with every node spelled out and multi-line text as literal blocks."""

    def ignore_aliases(self, _data: Any) -> bool:
        # Shared `$ref` dicts would otherwise become `&id001` anchors, which readers trip over.
        return True


def _represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None)


_Dumper.add_representer(str, _represent_text)


# -- channels and operations -----------------------------------------------------------------
_TOPICS: Final = Topics("{store}")
_BINDING_VERSION: Final = "0.2.0"


@dataclass(frozen=True)
class _Channel:
    """One topic of the contract and what the hub does with it."""

    key: str
    address: str
    description: str
    messages: tuple[str, ...]
    action: Literal["send", "receive"] | None
    retained: bool = False
    expiry: int | None = None
    reply_to: str | None = None

    @property
    def operation_id(self) -> str:
        return f"{self.action}{self.key[0].upper()}{self.key[1:]}"

    def channel(self) -> dict[str, Any]:
        names = [part.strip("{}") for part in self.address.split("/") if part.startswith("{")]
        return {
            "address": self.address,
            "description": self.description,
            "parameters": {name: {"$ref": f"#/components/parameters/{name}"} for name in names},
            "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in self.messages},
        }

    def operation(self) -> dict[str, Any]:
        mqtt: dict[str, Any] = {"qos": 1, "retain": self.retained}
        if self.expiry is not None:
            mqtt["messageExpiryInterval"] = self.expiry
        operation: dict[str, Any] = {
            "action": self.action,
            "channel": {"$ref": f"#/channels/{self.key}"},
            "messages": [{"$ref": f"#/channels/{self.key}/messages/{name}"} for name in self.messages],
            "bindings": {"mqtt": mqtt | {"bindingVersion": _BINDING_VERSION}},
        }
        if self.reply_to is not None:
            reply = next(c for c in _CHANNELS if c.key == self.reply_to)
            operation["reply"] = {
                "channel": {"$ref": f"#/channels/{reply.key}"},
                "messages": [{"$ref": f"#/channels/{reply.key}/messages/{name}"} for name in reply.messages],
            }
        return operation


def _state_channel(key: str, address: str, description: str, message: str) -> _Channel:
    return _Channel(key, address, description, (message,), "send", retained=True)


_CHANNELS: Final = (
    _Channel(
        "hubStatus",
        _TOPICS.hub_status(),
        'Retained hub birth, and the LWT `{"state":"offline"}`. Clients hold commands while the hub is offline.',
        ("hubStatus",),
        "send",
        retained=True,
    ),
    _Channel(
        "deviceStatus",
        _TOPICS.device_status("{device}"),
        "Retained device birth and LWT. `sess` rises by 1 per connect; a birth always wins, and the hub "
        "ignores an offline whose `sess` is lower than the current online's.",
        ("deviceStatus",),
        "receive",
        retained=True,
    ),
    _Channel(
        "command",
        _TOPICS.cmd("{device}"),
        "Commands from a device; the broker pins each device to its own topic, so the topic names "
        "the sender. The idempotency key is (device, id).",
        tuple(f"command.{t}" for t in COMMANDS),
        "receive",
        expiry=30,
        reply_to="reply",
    ),
    _Channel(
        "reply",
        _TOPICS.reply("{device}"),
        "The reply to each command; a success is sent only after its effect is durably committed.",
        ("reply",),
        None,
    ),
    _Channel(
        "event",
        _TOPICS.event("{kind}"),
        "Events of one kind (the event type's prefix); `seq` is store-wide and strictly increasing by 1.",
        tuple(f"event.{t}" for t in EVENT_DESCRIPTIONS),
        "send",
    ),
    _Channel(
        "kds",
        _TOPICS.kds("{station}"),
        "A station's KDS stream; `prev` lets a screen detect a gap in its own stream.",
        ("kds",),
        "send",
    ),
    _state_channel("stateShift", _TOPICS.state_shift(), "The current shift.", "shiftState"),
    _state_channel("stateMenu", _TOPICS.state_menu(), "The menu with its version.", "menuState"),
    _state_channel("stateAvailability", _TOPICS.state_availability(), "The 86 board.", "availabilityState"),
    _state_channel("statePrinter", _TOPICS.state_printer("{printer}"), "A printer's status.", "printerState"),
    _state_channel("stateStaff", _TOPICS.state_staff(), "Active staff for login pickers.", "staffState"),
    _Channel(
        "deviceJob",
        _TOPICS.device_do("{device}"),
        "Jobs for one device; it refuses a job past `expires_at` and answers with a `device.result` "
        "command. A `drawer.kick` carries a Message Expiry of 10 s: a drawer must never pop late.",
        ("deviceJob",),
        "send",
    ),
)

_PARAMETERS: Final = {
    "store": {"description": "The store id from the hub's config."},
    "device": {"description": "A device id `[a-z0-9-]{1,32}`, also its MQTT client id and username."},
    "kind": {
        "description": "An event type's prefix (`ticket` for `ticket.fired`).",
        "enum": list(EVENT_KINDS),
    },
    "station": {"description": "A KDS station id; `expo` receives every station's tickets."},
    "printer": {"description": "A printer id from the hub's config."},
}


# -- messages --------------------------------------------------------------------------------
def _messages(ref: dict[type[BaseModel], JsonSchemaValue]) -> dict[str, Any]:
    correlation = {"correlationId": {"$ref": "#/components/correlationIds/commandId"}}
    messages: dict[str, Any] = {
        "hubStatus": _message("Hub status", _summary(HubStatus), ref[HubStatus]),
        "deviceStatus": _message("Device status", _summary(DeviceStatus), ref[DeviceStatus]),
        "reply": _message("Reply", _summary(Reply), ref[Reply]) | correlation,
        "kds": _message("KDS message", _summary(KdsMessage), ref[KdsMessage]),
        "shiftState": _message("Shift", _summary(ShiftState), ref[ShiftState]),
        "menuState": _message("Menu", _summary(Menu), ref[Menu]),
        "availabilityState": _message("Availability", _summary(AvailabilityState), ref[AvailabilityState]),
        "printerState": _message("Printer", _summary(PrinterState), ref[PrinterState]),
        "staffState": _message("Staff", _summary(StaffList), ref[StaffList]),
        "deviceJob": _message("Device job", _summary(DeviceJob), ref[DeviceJob]),
    }
    for cmd_type, body in COMMANDS.items():
        required = ["type", "body"] if any(f.is_required() for f in body.model_fields.values()) else ["type"]
        payload = _refine(ref[CommandEnvelope], {"type": {"const": cmd_type}, "body": ref[body]}, required)
        messages[f"command.{cmd_type}"] = _message(cmd_type, _summary(body), payload) | correlation
    for event_type, description in EVENT_DESCRIPTIONS.items():
        payload = _refine(ref[EventEnvelope], {"type": {"const": event_type}}, ["type"])
        message = _message(event_type, description, payload)
        if event_type in EXTENSION_EVENT_TYPES:
            message["tags"] = [{"name": "extension", "description": "Added compatibly to the v1 list."}]
        messages[f"event.{event_type}"] = message
    return messages


def _message(name: str, summary: str, payload: JsonSchemaValue) -> dict[str, Any]:
    return {"name": name, "title": name, "summary": summary, "payload": payload}


def _summary(model: type[BaseModel]) -> str:
    return (inspect.getdoc(model) or model.__name__).splitlines()[0]


def _refine(envelope: JsonSchemaValue, properties: dict[str, Any], required: list[str]) -> JsonSchemaValue:
    return {"allOf": [envelope, {"type": "object", "properties": properties, "required": required}]}


# -- schemas ---------------------------------------------------------------------------------
_PAYLOAD_MODELS: Final[tuple[type[BaseModel], ...]] = (
    CommandEnvelope,
    Reply,
    EventEnvelope,
    KdsMessage,
    DeviceJob,
    HubStatus,
    DeviceStatus,
    ShiftState,
    Menu,
    AvailabilityState,
    PrinterState,
    StaffList,
)


class _AsyncApiSchema(GenerateJsonSchema):
    """Pydantic's JSON Schema, trimmed to what the AsyncAPI Schema Object reads the same way."""

    def field_title_should_be_set(self, _schema: Any) -> bool:
        # Property titles ("Ticket Id") only repeat the property names.
        return False

    def tagged_union_schema(self, schema: core_schema.TaggedUnionSchema) -> JsonSchemaValue:
        # AsyncAPI's `discriminator` is a bare property name with other semantics; the branches'
        # `const` values already tell them apart.
        generated = super().tagged_union_schema(schema)
        generated.pop("discriminator", None)
        return generated


def _schemas() -> tuple[dict[str, Any], dict[type[BaseModel], JsonSchemaValue]]:
    models = list(dict.fromkeys([*_PAYLOAD_MODELS, *COMMANDS.values()]))
    refs, top = models_json_schema(
        [(model, "validation") for model in models],
        ref_template="#/components/schemas/{model}",
        schema_generator=_AsyncApiSchema,
    )
    return top["$defs"], {model: refs[(model, "validation")] for model in models}


_DESCRIPTION: Final = f"""\
The public MQTT interface of a StoreHub hub (contract v1): what any tablet, KDS, drawer controller \
or third-party app may rely on. Generated from the models in `hub/contract`; docs/contract.md is \
the prose.

Operations are from the hub's point of view: `send` is published by the hub, `receive` is \
published by devices and read by the hub. Every command is answered on `reply/{{device}}` with the \
same `id`.

- JSON payloads, UTF-8, at most {MAX_PAYLOAD_BYTES} bytes (larger: `too_large`). Money is integer \
minor units; times are RFC 3339 UTC strings; ids are `[A-Za-z0-9_-]{{1,64}}`.
- QoS 1 everywhere; only `hub/status`, `device/+/status` and `state/...` are retained.
- Within v1 clients ignore unknown keys; command bodies refuse them.
- Error replies carry one `ErrorCode`. These are never remembered under the command id, so a \
corrected retry works: {", ".join(f"`{code}`" for code in sorted(NOT_REMEMBERED))}.
"""
