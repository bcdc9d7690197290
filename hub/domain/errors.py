"""Domain errors: each carries the contract error code its reply will have.

    DomainError(code, message, **details)
     ├── Unauthorized       no or expired token, wrong PIN                  `unauthorized`
     ├── Forbidden          the role (or device) may not do this            `forbidden`
     ├── ApprovalRequired   a manager must act or approve                   `approval_required`
     ├── ShiftClosed        the command needs an open shift                 `shift_closed`
     ├── NotFound           no such ticket, line, table, item, option...    `not_found`
     ├── Conflict           the state forbids it                            `conflict`
     ├── ItemUnavailable    86'd or sold out                                `item_unavailable`
     ├── PaymentDeclined    the tender cannot be taken                      `payment_declined`
     ├── RateLimited        too many wrong PINs                             `rate_limited`
     └── InvalidCommand     a body the domain cannot read (an engine bug)   `invalid_payload`

Messages are plain English a server can read at the table; `details` are JSON values.
"""

# ruff: noqa: N818 - the names read as what happened at the raise site (NotFound, Conflict, ...)
from __future__ import annotations

from typing import Any, ClassVar

from hub.contract.errors import ErrorCode


class DomainError(Exception):
    """A command refused by the rules; `code` is the contract error code of the reply."""

    def __init__(self, code: ErrorCode, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details: dict[str, Any] = details

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.value!r}, {self.message!r}, **{self.details!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DomainError):
            return NotImplemented
        return (self.code, self.message, self.details) == (other.code, other.message, other.details)

    def __hash__(self) -> int:
        return hash((self.code, self.message))


class _CodedError(DomainError):
    """A domain error whose code is fixed by its class."""

    CODE: ClassVar[ErrorCode] = ErrorCode.INTERNAL

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(self.CODE, message, **details)


class Unauthorized(_CodedError):
    """No token, an expired or ended token, or a wrong PIN."""

    CODE = ErrorCode.UNAUTHORIZED


class Forbidden(_CodedError):
    """The acting employee's role (or the device) may not do this."""

    CODE = ErrorCode.FORBIDDEN


class ApprovalRequired(_CodedError):
    """A manager must act or approve."""

    CODE = ErrorCode.APPROVAL_REQUIRED


class ShiftClosed(_CodedError):
    """Tables, tickets, payments and the drawer need an open shift."""

    CODE = ErrorCode.SHIFT_CLOSED


class NotFound(_CodedError):
    """The ticket, line, table, item, option, employee or device does not exist."""

    CODE = ErrorCode.NOT_FOUND


class Conflict(_CodedError):
    """The current state forbids the command."""

    CODE = ErrorCode.CONFLICT


class ItemUnavailable(_CodedError):
    """The item is 86'd or fewer are left than asked for."""

    CODE = ErrorCode.ITEM_UNAVAILABLE


class PaymentDeclined(_CodedError):
    """The tender cannot be taken."""

    CODE = ErrorCode.PAYMENT_DECLINED


class RateLimited(_CodedError):
    """Too many wrong PINs for this employee or from this device."""

    CODE = ErrorCode.RATE_LIMITED


class InvalidCommand(_CodedError):
    """The body is not the model the command type needs (a bug of the caller)."""

    CODE = ErrorCode.INVALID_PAYLOAD
