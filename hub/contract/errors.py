"""Contract v1 error codes: every error reply carries exactly one of these."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """The `error.code` of a reply (CONTRACT.md, "Error codes")."""

    INVALID_PAYLOAD = "invalid_payload"
    UNKNOWN_COMMAND = "unknown_command"
    TOO_LARGE = "too_large"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    APPROVAL_REQUIRED = "approval_required"
    SHIFT_CLOSED = "shift_closed"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    IDEMPOTENCY_MISMATCH = "idempotency_mismatch"
    ITEM_UNAVAILABLE = "item_unavailable"
    PAYMENT_DECLINED = "payment_declined"
    OFFLINE_LIMIT_EXCEEDED = "offline_limit_exceeded"
    RATE_LIMITED = "rate_limited"
    CLOCK_INVALID = "clock_invalid"
    STORAGE_FULL = "storage_full"
    INTERNAL = "internal"


TRANSIENT_CODES: frozenset[ErrorCode] = frozenset(
    {ErrorCode.INVALID_PAYLOAD, ErrorCode.UNAUTHORIZED, ErrorCode.RATE_LIMITED, ErrorCode.INTERNAL}
)
"""Replies with these codes are not remembered under the command id, so a corrected retry works.

`clock_invalid`, `storage_full` and `too_large` are not remembered either: nothing was
evaluated, so the same command must be able to succeed once the hub can write again.
"""

NOT_REMEMBERED: frozenset[ErrorCode] = TRANSIENT_CODES | {
    ErrorCode.CLOCK_INVALID,
    ErrorCode.STORAGE_FULL,
    ErrorCode.TOO_LARGE,
}
