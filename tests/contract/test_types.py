"""How the contract spells time: every instant, in any offset, the same way as the ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.contract.types import format_time, parse_time

offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
moments = st.datetimes(
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - hypothesis takes naive bounds
    max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=offsets,
)


def _spelled(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


@given(moments)
def test_any_instant_is_spelled_in_utc_with_milliseconds(moment: datetime) -> None:
    text = format_time(moment)
    assert text == _spelled(moment)
    assert format_time(moment) == text  # a remembered spelling is the same spelling
    assert parse_time(text) == moment.astimezone(UTC).replace(microsecond=moment.microsecond // 1000 * 1000)


def test_equal_instants_in_different_offsets_spell_the_same() -> None:
    utc = datetime(2026, 11, 30, 23, 30, 0, 250_000, tzinfo=UTC)
    paris = utc.astimezone(timezone(timedelta(hours=1)))
    assert format_time(paris) == format_time(utc) == "2026-11-30T23:30:00.250Z"


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        format_time(datetime(2026, 11, 30, 12, 0))  # noqa: DTZ001 - the point of the test


def test_the_repeated_hour_when_clocks_go_back_is_two_instants() -> None:
    new_york = ZoneInfo("America/New_York")
    first = datetime(2026, 11, 1, 1, 30, tzinfo=new_york, fold=0)
    second = datetime(2026, 11, 1, 1, 30, tzinfo=new_york, fold=1)
    assert format_time(first) == "2026-11-01T05:30:00.000Z"
    assert format_time(second) == "2026-11-01T06:30:00.000Z"
