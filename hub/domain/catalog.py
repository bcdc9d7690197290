"""The menu and the 86 board: publishing menus, setting availability."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hub.contract.commands import MenuAvailability
from hub.contract.menu import Menu
from hub.domain.errors import Conflict, NotFound

if TYPE_CHECKING:
    from hub.domain.work import Work


def availability(w: Work) -> dict[str, Any]:
    """`menu.availability` (manager or KDS device) → `{"menu_item_id","available","remaining"}`.

    A `remaining` count of 0 makes the item unavailable; available with no count takes it off the board.
    """
    body = w.body(MenuAvailability)
    menu = w.state.menu
    item = menu.item(body.menu_item_id) if menu is not None else None
    if item is None:
        raise NotFound(f"Item {body.menu_item_id} is not on the menu", menu_item_id=body.menu_item_id)
    available = body.available and (body.remaining is None or body.remaining > 0)
    remaining = body.remaining
    current = w.state.availability.get(item.id)
    now = (current.available, current.remaining) if current is not None else (True, None)
    if now != (available, remaining):
        w.emit(
            "menu.availability_changed",
            {"menu_item_id": item.id, "available": available, "remaining": remaining, "reason": "set"},
        )
    return {"menu_item_id": item.id, "name": item.name, "available": available, "remaining": remaining}


def publish(w: Work) -> dict[str, Any]:
    """`menu.publish` (manager or relay) and `menu.load` (admin) → `{"version","changed"}`.

    A menu equal to the current one writes nothing. Open tickets keep their prices (lines carry them).
    """
    body = w.body(Menu)
    menu = Menu.model_validate(body.model_dump())
    if menu.currency != w.ctx.settings.currency:
        raise Conflict(
            f"The menu is priced in {menu.currency}; this store sells in {w.ctx.settings.currency}",
            currency=menu.currency,
        )
    current = w.state.menu
    if current is not None and current.model_dump() == menu.model_dump():
        return {"version": menu.version, "changed": False}
    w.emit("menu.published", {"version": menu.version, "menu": menu.model_dump(mode="json")})
    return {"version": menu.version, "changed": True}
