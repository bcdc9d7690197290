"""The menu as published on `state/menu` and accepted by `menu.publish` (CONTRACT.md, "Menu")."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.contract.types import Cents, Id


class TaxClass(BaseModel):
    """A tax class: rate in basis points (875 = 8.75 %), included in the price or added on top."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Id
    rate_bp: Annotated[int, Field(ge=0, le=10_000, strict=True)]
    inclusive: bool = False


class ModifierOption(BaseModel):
    """One choice in a modifier group; its price is added to the item's unit price."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Id
    name: Annotated[str, Field(min_length=1, max_length=80)]
    price: Cents = 0


class ModifierGroup(BaseModel):
    """A group of options of which a line must pick between `min` and `max`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Id
    name: Annotated[str, Field(min_length=1, max_length=80)]
    min: Annotated[int, Field(ge=0, le=20, strict=True)] = 0
    max: Annotated[int, Field(ge=1, le=20, strict=True)] = 1
    options: Annotated[list[ModifierOption], Field(min_length=1)]

    @model_validator(mode="after")
    def _min_not_above_max(self) -> ModifierGroup:
        if self.min > self.max:
            raise ValueError(f"modifier group {self.id}: min {self.min} is above max {self.max}")
        return self


class MenuItem(BaseModel):
    """A sellable item: price in minor units, its tax class, and the kitchen stations it goes to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Id
    name: Annotated[str, Field(min_length=1, max_length=80)]
    price: Cents
    tax_class: Id
    stations: list[Id] = Field(default_factory=list)
    modifier_groups: list[Id] = Field(default_factory=list)
    course: Annotated[int, Field(ge=1, le=9, strict=True)] | None = None
    category: Annotated[str, Field(max_length=80)] | None = None


class Menu(BaseModel):
    """The whole menu with its version; `state/menu` carries exactly this."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Annotated[str, Field(min_length=1, max_length=64)]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    items: list[MenuItem]
    modifier_groups: list[ModifierGroup] = Field(default_factory=list)
    tax_classes: Annotated[list[TaxClass], Field(min_length=1)]

    @model_validator(mode="after")
    def _references_resolve(self) -> Menu:
        taxes = {t.id for t in self.tax_classes}
        groups = {g.id for g in self.modifier_groups}
        _unique("tax class", [t.id for t in self.tax_classes])
        _unique("modifier group", [g.id for g in self.modifier_groups])
        _unique("item", [i.id for i in self.items])
        _unique("modifier option", [o.id for g in self.modifier_groups for o in g.options])
        for item in self.items:
            if item.tax_class not in taxes:
                raise ValueError(f"item {item.id}: unknown tax_class {item.tax_class!r}")
            for group in item.modifier_groups:
                if group not in groups:
                    raise ValueError(f"item {item.id}: unknown modifier group {group!r}")
        return self

    def item(self, item_id: str) -> MenuItem | None:
        """The item with this id, or None."""
        return next((i for i in self.items if i.id == item_id), None)


def _unique(what: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise ValueError(f"duplicate {what} id {i!r}")
        seen.add(i)
