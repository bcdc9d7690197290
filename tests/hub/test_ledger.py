"""The ledger's hash chain is exactly the contract's definition, so central can verify it independently."""

from __future__ import annotations

import dataclasses
import hashlib
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.store.ledger import GENESIS_HASH, check_entry, make_entry


def contract_hash(entry: dict[str, object]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(canonical).hexdigest()


def test_entries_hash_as_the_contract_says_and_chain_from_64_zeros() -> None:
    first = make_entry(
        seq=1, epoch=1, at="2026-11-22T12:00:00.123Z", type_="shift.opened", actor="emp-1", device="tab-1",
        cmd="c-1", data={"opening_float": 20000, "note": "café"}, prev_hash=GENESIS_HASH,
    )
    second = make_entry(
        seq=2, epoch=1, at="2026-11-22T12:00:01.000Z", type_="shift.cash_moved", actor="emp-1", device="tab-1",
        cmd="c-2", data={"amount": 500}, prev_hash=first.hash,
    )
    assert GENESIS_HASH == "0" * 64
    assert first.hash == contract_hash(first.to_dict())
    assert second.hash == contract_hash(second.to_dict())
    assert check_entry(first, 1, GENESIS_HASH) is None
    assert check_entry(second, 2, first.hash) is None


def test_a_changed_amount_a_gap_or_a_broken_link_is_named() -> None:
    first = make_entry(
        seq=1, epoch=1, at="2026-11-22T12:00:00.000Z", type_="shift.opened", actor=None, device=None, cmd=None,
        data={"opening_float": 100}, prev_hash=GENESIS_HASH,
    )
    altered = dataclasses.replace(first, data={"opening_float": 1})
    assert "altered" in (check_entry(altered, 1, GENESIS_HASH) or "")
    assert "gap" in (check_entry(first, 2, GENESIS_HASH) or "")
    assert "prev_hash" in (check_entry(first, 1, "f" * 64) or "")


_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=20)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    seq=st.integers(1, 10**9),
    epoch=st.integers(1, 50),
    actor=st.none() | _text,
    device=st.none() | _text,
    cmd=st.none() | _text,
    type_=_text,
    data=st.dictionaries(_text, _json, max_size=5),
)
def test_the_assembled_hash_equals_the_contract_hash_for_any_entry(  # noqa: PLR0917 - one per entry field
    seq: int, epoch: int, actor: str | None, device: str | None, cmd: str | None, type_: str, data: dict[str, object]
) -> None:
    entry = make_entry(
        seq=seq, epoch=epoch, at="2026-11-22T12:00:00.123Z", type_=type_, actor=actor, device=device,
        cmd=cmd, data=data, prev_hash=GENESIS_HASH,
    )
    assert entry.hash == contract_hash(entry.to_dict())
    assert json.loads(entry.row()[7]) == data
