"""Projections: the domain state written as queryable tables, and read back at start-up.

The engine hands over the entities an event touched (`EntityRef`s from `domain.evolve`); each is
rewritten whole (its JSON in `doc`, with generated columns for queries). Child rows — ticket
lines, payments, drawer events — are rewritten with their parent. `load_state` reads them back
into a `StoreState`; `storehub replay` rebuilds the same tables from the ledger and diffs them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from hub import domain

if TYPE_CHECKING:
    from collections.abc import Iterable

    import aiosqlite

    from hub.store.db import Writes


@dataclass(frozen=True, slots=True)
class EntityTable:
    """Where one kind of entity is projected."""

    kind: str
    table: str
    key: str
    field: str


ENTITY_TABLES: Final = {
    t.kind: t
    for t in (
        EntityTable("ticket", "p_tickets", "ticket_id", "tickets"),
        EntityTable("table", "p_tables", "table_id", "tables"),
        EntityTable("shift", "p_shifts", "shift_id", "shifts"),
        EntityTable("staff", "p_staff", "employee_id", "staff"),
        EntityTable("session", "p_staff_sessions", "token_hash", "sessions"),
        EntityTable("device", "p_devices", "device_id", "devices"),
        EntityTable("availability", "p_availability", "menu_item_id", "availability"),
    )
}
ENTITY_FIELDS: Final = frozenset(t.field for t in ENTITY_TABLES.values()) | {"menu"}
PROJECTION_TABLES: Final = (
    "p_store",
    "p_menu",
    *(t.table for t in ENTITY_TABLES.values()),
    "p_ticket_lines",
    "p_payments",
    "p_drawer_events",
)
"""Every projection table, in the order `storehub replay` compares them."""

CHILDREN: Final = {
    # parent kind: (child table, parent key column, child key column, list field in the parent doc, id field)
    "ticket": (
        ("p_ticket_lines", "ticket_id", "line_id", "lines", "line_id"),
        ("p_payments", "ticket_id", "payment_id", "payments", "payment_id"),
    ),
    "shift": (("p_drawer_events", "shift_id", "event_id", "movements", None),),
}
"""Child rows rewritten with their parent; an id field of None numbers the children in order."""


def _dumps(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def plan_writes(state: domain.StoreState, touched: Iterable[domain.EntityRef]) -> Writes:
    """The statements that rewrite the touched entities' rows (and the store row), ready for one transaction."""
    deletes: dict[str, list[tuple[Any, ...]]] = {}
    upserts: dict[str, list[tuple[Any, ...]]] = {}
    child_deletes: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    child_rows: dict[str, list[tuple[Any, ...]]] = {}
    writes: Writes = []
    touched = set(touched)
    for kind, key in sorted(touched):
        if kind == "menu":
            menu = state.menu
            if menu is None:
                writes.append(("DELETE FROM p_menu WHERE id = ?", [("menu",)]))
            else:
                doc = _dumps(menu.model_dump(mode="json"))
                writes.append(("INSERT OR REPLACE INTO p_menu (id, doc) VALUES ('menu', ?)", [(doc,)]))
            continue
        spec = ENTITY_TABLES.get(kind)
        if spec is None:
            continue
        entity = getattr(state, spec.field).get(key)
        for child_table, parent_col, _child_col, _list_field, _id_field in CHILDREN.get(kind, ()):
            child_deletes.setdefault((child_table, parent_col), []).append((key,))
        if entity is None:
            deletes.setdefault(spec.table, []).append((key,))
            continue
        # Documents in field order, serialised by pydantic's own (compiled) serializer: this runs for
        # every entity a batch touched, on the hot path. Only the ledger needs canonical (sorted) JSON.
        upserts.setdefault(spec.table, []).append((key, entity.model_dump_json()))
        for child_table, _parent_col, _child_col, list_field, id_field in CHILDREN.get(kind, ()):
            for index, child in enumerate(getattr(entity, list_field)):
                child_id = str(index + 1) if id_field is None else str(getattr(child, id_field))
                child_rows.setdefault(child_table, []).append((key, child_id, child.model_dump_json()))
    for table, rows in deletes.items():
        writes.append((f"DELETE FROM {table} WHERE {_key_of(table)} = ?", rows))  # noqa: S608 - constant names
    for table, rows in upserts.items():
        writes.append((f"INSERT OR REPLACE INTO {table} ({_key_of(table)}, doc) VALUES (?, ?)", rows))  # noqa: S608
    for (table, parent_col), rows in child_deletes.items():
        writes.append((f"DELETE FROM {table} WHERE {parent_col} = ?", rows))  # noqa: S608
    for table, rows in child_rows.items():
        parent_col, child_col = _child_columns(table)
        writes.append((f"INSERT INTO {table} ({parent_col}, {child_col}, doc) VALUES (?, ?, ?)", rows))  # noqa: S608
    if ("store", "store") in touched:
        writes.append(("INSERT OR REPLACE INTO p_store (id, doc) VALUES ('store', ?)", [(_dumps(store_doc(state)),)]))
    return writes


def store_doc(state: domain.StoreState) -> dict[str, Any]:
    """The store-level fields of the state (everything that is not a keyed entity)."""
    full = state.model_dump(mode="json", exclude=set(ENTITY_FIELDS))
    return dict(full)


def all_refs(state: domain.StoreState) -> set[domain.EntityRef]:
    """Every entity of `state` (replay writes them all into a scratch database)."""
    refs: set[domain.EntityRef] = {("menu", "menu"), ("store", "store")}
    for spec in ENTITY_TABLES.values():
        refs |= {(spec.kind, key) for key in getattr(state, spec.field)}
    return refs


SETTLED_TICKET_SQL: Final = (
    "status IN ('closed', 'voided') "
    "AND COALESCE(json_extract(doc, '$.closed_at'), json_extract(doc, '$.opened_at')) < ?"
)
"""Tickets settled before a cut-off: kept in the database, not in memory (loaded again when referenced)."""


async def load_state(conn: aiosqlite.Connection, *, settled_before: str | None = None) -> domain.StoreState:
    """Read the projections back into a StoreState (an empty one for a new database).

    With `settled_before`, tickets closed or voided before that time stay on disk: a store's
    memory then holds its open tickets and the recent ones, not every ticket it ever sold.
    """
    async with conn.execute("SELECT doc FROM p_store WHERE id = 'store'") as cursor:
        row = await cursor.fetchone()
    data: dict[str, Any] = json.loads(row[0]) if row else domain.StoreState.empty().model_dump(mode="json")
    for field in ENTITY_FIELDS:
        data.pop(field, None)
    for spec in ENTITY_TABLES.values():
        sql = f"SELECT {spec.key}, doc FROM {spec.table}"  # noqa: S608 - constant names
        params: tuple[str, ...] = ()
        if spec.kind == "ticket" and settled_before is not None:
            sql += f" WHERE NOT ({SETTLED_TICKET_SQL})"
            params = (settled_before,)
        async with conn.execute(sql, params) as cursor:
            data[spec.field] = {r[0]: json.loads(r[1]) async for r in cursor}
    async with conn.execute("SELECT doc FROM p_menu WHERE id = 'menu'") as cursor:
        menu = await cursor.fetchone()
    data["menu"] = json.loads(menu[0]) if menu else None
    return domain.StoreState.model_validate(data)


def _key_of(table: str) -> str:
    return next(t.key for t in ENTITY_TABLES.values() if t.table == table)


def _child_columns(table: str) -> tuple[str, str]:
    for specs in CHILDREN.values():
        for child_table, parent_col, child_col, _list_field, _id_field in specs:
            if child_table == table:
                return parent_col, child_col
    raise KeyError(table)
