"""Envelopes of contract v1 and the one place a payload is decoded or encoded.

    ContractViolation         a payload the contract refuses; carries the reply's error code
    decode_command(payload)   bytes of `cmd/{device}` -> (CommandEnvelope, validated body)
    decode(payload, model)    bytes of any other topic -> model
    encode(model)             model -> compact JSON bytes, shaped as CONTRACT.md shows it

Hub-to-client envelopes ignore unknown keys (within v1 clients ignore unknown keys); device
statuses keep them, because devices may add fields (the relay adds its cursor and lag).
"""

from __future__ import annotations

import json
import operator
import re
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, Self, TypeVar, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    Tag,
    ValidationError,
    model_serializer,
    model_validator,
)

from hub.contract.commands import COMMANDS, Pin
from hub.contract.errors import ErrorCode
from hub.contract.types import Id, parse_time

if TYPE_CHECKING:
    from datetime import datetime

MAX_PAYLOAD_BYTES: Final = 64 * 1024
"""Largest payload the hub accepts; a larger command gets a `too_large` reply."""

_M = TypeVar("_M", bound=BaseModel)


def _exactly_int(value: object) -> object:
    # Literal[1] alone would also take True and 1.0, which no client means.
    if type(value) is not int:
        raise ValueError("v must be the integer 1")
    return value


Version = Annotated[Literal[1], BeforeValidator(_exactly_int)]
"""The envelope version `v`: always the integer 1 under `storehub/v1/`."""

Seq = Annotated[int, Field(ge=0, strict=True)]
"""A ledger sequence number: store-wide, strictly increasing by 1."""

Token = Annotated[str, StringConstraints(min_length=1, max_length=200)]
"""A staff session token from `staff.login`."""

DeviceKind = Literal["tablet", "kds", "drawer", "button", "display", "relay", "printer"]
"""What a device is; `relay` and `printer` extend the contract's list."""

Online = Literal["online", "offline"]
"""The `state` of a retained status."""

_T = TypeVar("_T")


def _is_none(value: object) -> bool:
    return value is None


Omittable = Annotated[_T | None, Field(exclude_if=_is_none)]
"""An optional field left out of the JSON when None (the hub's LWT is just `{"state":"offline"}`)."""


class ContractViolation(Exception):  # noqa: N818 - the contract's name for a refused payload
    """A payload the contract refuses; `code` and `message` go into the error reply as they are."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        cmd_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.cmd_id = cmd_id
        self.details: dict[str, Any] = details if details is not None else {}

    def reply(self, seq: int | None = None) -> Reply:
        """Return the error reply for the command this violation refused."""
        return Reply.failure(self.cmd_id, self.code, self.message, self.details, seq)


# -- commands (device -> hub) ----------------------------------------------------------------
class ApprovePin(BaseModel):
    """An approval by an employee's id and PIN."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    employee_id: Id
    pin: Pin


class ApproveToken(BaseModel):
    """An approval by the approving employee's session token."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    token: Token


def _approval_shape(value: object) -> str:
    # Pick the shape by its keys, so a bad approval reports the errors of one shape only.
    is_token = isinstance(value, ApproveToken) or (isinstance(value, dict) and "token" in value)
    return "ApproveToken" if is_token else "ApprovePin"


Approve = Annotated[
    Annotated[ApprovePin, Tag("ApprovePin")] | Annotated[ApproveToken, Tag("ApproveToken")],
    Discriminator(_approval_shape),
]
"""The `approve` of a command: the approving employee, by PIN or by token."""


class CommandEnvelope(BaseModel):
    """A command on `cmd/{device}`; `body` is validated separately against `COMMANDS[type]`."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    v: Version
    id: Id
    type: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    at: str | None = None
    auth: Token | None = None
    approve: Approve | None = None
    body: dict[str, Any] = Field(default_factory=dict)


def decode_command(payload: bytes, *, max_bytes: int = MAX_PAYLOAD_BYTES) -> tuple[CommandEnvelope, BaseModel]:
    """Decode a command payload into its envelope and its validated body, or raise ContractViolation."""
    if len(payload) > max_bytes:
        raise _too_large(payload, max_bytes, _leading_id(payload))
    raw = _load_object(payload)
    cmd_id = raw.get("id")
    if not (isinstance(cmd_id, str) and _ID.fullmatch(cmd_id)):
        cmd_id = None
    try:
        envelope = CommandEnvelope.model_validate(raw)
    except ValidationError as exc:
        raise _invalid(exc, "", cmd_id) from None
    body_model = COMMANDS.get(envelope.type)
    if body_model is None:
        raise ContractViolation(
            ErrorCode.UNKNOWN_COMMAND, f"unknown command type {envelope.type!r}", cmd_id=envelope.id
        )
    try:
        body = body_model.model_validate(envelope.body)
    except ValidationError as exc:
        raise _invalid(exc, "body", envelope.id) from None
    return envelope, body


# -- replies (hub -> device) -----------------------------------------------------------------
class ErrorInfo(BaseModel):
    """The `error` of a failed reply."""

    model_config = ConfigDict(frozen=True)

    code: ErrorCode
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class Reply(BaseModel):
    """A reply on `reply/{device}`: `result` when `ok`, else `error`; `seq` when known."""

    model_config = ConfigDict(frozen=True)

    v: Literal[1] = 1
    id: str | None
    ok: bool
    seq: Seq | None = None
    result: Any = None
    error: ErrorInfo | None = None

    @classmethod
    def success(cls, cmd_id: str | None, seq: int, result: Any) -> Self:
        """Build the reply of a command whose effect is durably committed."""
        return cls(id=cmd_id, ok=True, seq=seq, result=result)

    @classmethod
    def failure(
        cls,
        cmd_id: str | None,
        code: ErrorCode,
        message: str,
        details: dict[str, Any] | None = None,
        seq: int | None = None,
    ) -> Self:
        """Build the reply of a refused command; `cmd_id` is None when no id could be read."""
        error = ErrorInfo(code=code, message=message, details=details or {})
        return cls(id=cmd_id, ok=False, seq=seq, error=error)

    @model_validator(mode="after")
    def _error_iff_failed(self) -> Self:
        if self.ok == (self.error is not None):
            raise ValueError("a reply carries an error exactly when ok is false")
        return self

    @model_serializer(mode="wrap")
    def _shape(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # The shape follows `ok` (CONTRACT.md, "Reply"): success has `result`, failure `error`.
        data: dict[str, Any] = handler(self)
        data.pop("error" if self.ok else "result", None)
        if self.seq is None:
            data.pop("seq", None)
        return data


# -- events, device jobs, statuses (hub or device -> all) ------------------------------------
class By(BaseModel):
    """Who caused an event: the device it came from and the acting employee."""

    model_config = ConfigDict(frozen=True)

    device: str | None = None
    actor: str | None = None


class EventEnvelope(BaseModel):
    """An event on `event/{kind}`; `seq` is the ledger sequence, `cmd` the causing command's id."""

    model_config = ConfigDict(frozen=True)

    v: Literal[1] = 1
    seq: Seq
    type: str
    at: str
    by: By = Field(default_factory=By)
    cmd: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class DeviceJob(BaseModel):
    """A job on `device/{device}/do`; refused past `expires_at`, answered with `device.result`."""

    model_config = ConfigDict(frozen=True)

    v: Literal[1] = 1
    id: Id
    type: Literal["drawer.kick", "ota.offer", "identify"]
    expires_at: str
    body: dict[str, Any] = Field(default_factory=dict)

    def expired(self, now: datetime) -> bool:
        """Tell whether the job must be refused at `now` (an aware datetime)."""
        return now >= parse_time(self.expires_at)


class HubStatus(BaseModel):
    """The retained `hub/status`: a birth with version, start, epoch and seq, or the `offline` LWT."""

    model_config = ConfigDict(frozen=True)

    state: Online
    version: Omittable[str] = None
    started_at: Omittable[str] = None
    epoch: Omittable[int] = None
    seq: Omittable[Seq] = None


class DeviceStatus(BaseModel):
    """The retained `device/{device}/status`: birth or LWT; `sess` rises by 1 per connect."""

    model_config = ConfigDict(extra="allow", frozen=True)

    state: Online
    sess: Annotated[int, Field(ge=0, strict=True)]
    kind: Omittable[DeviceKind] = None
    fw: Omittable[str] = None
    caps: list[str] = Field(default_factory=list, exclude_if=operator.not_)


# -- decoding and encoding of any payload ----------------------------------------------------
def decode(payload: bytes, model: type[_M], *, max_bytes: int = MAX_PAYLOAD_BYTES) -> _M:
    """Decode a non-command payload (status, reply, event, job) into `model`, or raise ContractViolation."""
    if len(payload) > max_bytes:
        raise _too_large(payload, max_bytes, None)
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        raise _invalid(exc, "", None) from None


def encode_command(
    cmd_id: str,
    type_: str,
    body: dict[str, Any] | None = None,
    *,
    auth: str | None = None,
    approve: dict[str, Any] | None = None,
) -> bytes:
    """A command envelope as a device sends it (simulators, benchmarks and tests build commands here)."""
    return json.dumps(
        {"v": 1, "id": cmd_id, "type": type_, "auth": auth, "approve": approve, "body": body or {}},
        separators=(",", ":"),
    ).encode()


def encode(model: BaseModel) -> bytes:
    """Serialise a model as compact UTF-8 JSON, by alias, with the omissions the model itself declares."""
    return model.model_dump_json(by_alias=True).encode()


# -- helpers ---------------------------------------------------------------------------------
_ID: Final = re.compile(get_args(Id)[1].pattern)
_LEADING_ID: Final = re.compile(rb'\s*\{\s*(?:"v"\s*:\s*1\s*,\s*)?"id"\s*:\s*"([A-Za-z0-9_-]{1,64})"')
_MAX_MESSAGE: Final = 500
_MAX_ERRORS: Final = 20


def _leading_id(payload: bytes) -> str | None:
    # Only an id that opens the object (after `"v":1`) is surely the top-level one; reading
    # more of an oversized payload is the work `too_large` exists to avoid.
    match = _LEADING_ID.match(payload, 0, 256)
    return match.group(1).decode() if match else None


def _too_large(payload: bytes, max_bytes: int, cmd_id: str | None) -> ContractViolation:
    message = f"payload is {len(payload)} bytes; the limit is {max_bytes}"
    return ContractViolation(ErrorCode.TOO_LARGE, message, cmd_id=cmd_id)


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _load_object(payload: bytes) -> dict[str, Any]:
    try:
        text = payload.decode()
    except UnicodeDecodeError:
        raise ContractViolation(ErrorCode.INVALID_PAYLOAD, "payload is not UTF-8") from None
    try:
        raw = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise ContractViolation(ErrorCode.INVALID_PAYLOAD, f"payload is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ContractViolation(ErrorCode.INVALID_PAYLOAD, "a command must be a JSON object")
    return raw


def _invalid(exc: ValidationError, prefix: str, cmd_id: str | None) -> ContractViolation:
    errors = [
        {"loc": _dotted(prefix, err["loc"]), "msg": err["msg"]}
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]
    message = "; ".join(f"{err['loc']}: {err['msg']}" for err in errors)
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 1] + "…"
    return ContractViolation(
        ErrorCode.INVALID_PAYLOAD, message, cmd_id=cmd_id, details={"errors": errors[:_MAX_ERRORS]}
    )


def _dotted(prefix: str, loc: tuple[int | str, ...]) -> str:
    # `body.items.0.qty`; an error of the whole object (a model validator) is located at `body`.
    parts = [prefix, *map(str, loc)] if prefix else [str(part) for part in loc]
    return ".".join(parts) or "payload"
