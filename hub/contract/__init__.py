"""Contract v1: the only place a topic is spelled or a payload is parsed (CONTRACT.md)."""

from hub.contract.commands import COMMANDS
from hub.contract.envelopes import (
    CommandEnvelope,
    ContractViolation,
    EventEnvelope,
    Reply,
    decode_command,
    encode,
)
from hub.contract.errors import ErrorCode
from hub.contract.kds import KdsMessage
from hub.contract.menu import Menu
from hub.contract.topics import Topics
from hub.contract.types import format_time, parse_time

__all__ = [
    "COMMANDS",
    "CommandEnvelope",
    "ContractViolation",
    "ErrorCode",
    "EventEnvelope",
    "KdsMessage",
    "Menu",
    "Reply",
    "Topics",
    "decode_command",
    "encode",
    "format_time",
    "parse_time",
]
