"""Copy-on-write views of the state, so `decide` can look at the would-be state without copying it.

`decide` applies the events it emits to an overlay of the state: the overlay's mappings read through
to the real ones and copy an entity only when `evolve` asks to edit it (`edit`). The real state is
never touched, and a command costs a copy of the few entities it changes, not of the store.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any, TypeVar, cast

from hub.domain.model import Entity, StoreState

V = TypeVar("V")

_MISSING: Any = object()


class Overlay(MutableMapping[str, V]):
    """A mapping that reads through to `base` and keeps its own writes and deletions."""

    __slots__ = ("_base", "_deleted", "_own")

    def __init__(self, base: Mapping[str, V]) -> None:
        self._base = base
        self._own: dict[str, V] = {}
        self._deleted: set[str] = set()

    def __getitem__(self, key: str) -> V:
        value = self._own.get(key, _MISSING)
        if value is not _MISSING:
            return value  # type: ignore[no-any-return]
        if key in self._deleted:
            raise KeyError(key)
        return self._base[key]

    def __setitem__(self, key: str, value: V) -> None:
        self._own[key] = value
        self._deleted.discard(key)

    def __delitem__(self, key: str) -> None:
        if key in self._own:
            del self._own[key]
            if key in self._base:
                self._deleted.add(key)
        elif key in self._base and key not in self._deleted:
            self._deleted.add(key)
        else:
            raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        if key in self._own:
            return True
        return key in self._base and key not in self._deleted

    def __iter__(self) -> Iterator[str]:
        for key in self._base:
            if key not in self._deleted and key not in self._own:
                yield key
        yield from self._own

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def writable(self, key: str) -> V:
        """The entity under `key`, copied into this overlay the first time it is edited."""
        value = self._own.get(key, _MISSING)
        if value is not _MISSING:
            return value  # type: ignore[no-any-return]
        if key in self._deleted:
            raise KeyError(key)
        original = self._base[key]
        mine = cast("V", original.clone() if isinstance(original, Entity) else copy.deepcopy(original))
        self._own[key] = mine
        return mine


def edit(mapping: Mapping[str, V], key: str) -> V:
    """The entity under `key`, safe to mutate: a private copy when `mapping` is an overlay."""
    if isinstance(mapping, Overlay):
        return cast("V", mapping.writable(key))
    return mapping[key]


def commit_overlay(base: StoreState, over: StoreState) -> None:
    """Make `base` what the overlay `over` (made from it by `overlay_of`) says it now is."""
    for name in StoreState.model_fields:
        mine = getattr(over, name)
        if isinstance(mine, Overlay):
            target = getattr(base, name)
            for key in mine._deleted:  # noqa: SLF001 - the overlay's own bookkeeping, same module
                target.pop(key, None)
            target.update(mine._own)  # noqa: SLF001
        elif mine is not getattr(base, name):
            setattr(base, name, mine)


def overlay_of(state: StoreState) -> StoreState:
    """A StoreState that reads `state` and keeps every change to itself."""
    values = {name: getattr(state, name) for name in StoreState.model_fields}
    for name in OVERLAID:
        values[name] = Overlay(values[name])
    return StoreState.model_construct(**values)


OVERLAID: tuple[str, ...] = (  # every dict field of StoreState (a test checks it)
    "availability",
    "staff",
    "sessions",
    "login_failures",
    "devices",
    "tables",
    "tickets",
    "open_tickets",
    "shifts",
    "periods",
)
