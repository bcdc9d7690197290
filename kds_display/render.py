"""The cards and the page as server-rendered HTML: one renderer for the first paint and every update."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

if TYPE_CHECKING:
    from kds_display.settings import KdsSettings
    from kds_display.station import Card

HERE = Path(__file__).resolve().parent
CHANNELS = {"dine_in": "Dine in", "takeout": "Takeout", "delivery": "Delivery"}


class Renderer:
    """Jinja2 templates of one screen (autoescaped: ticket notes are typed by people)."""

    def __init__(self, settings: KdsSettings) -> None:
        self.settings = settings
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals["channels"] = CHANNELS
        self._card = self.env.get_template("card.html")
        self._page = self.env.get_template("index.html")

    def card(self, card: Card) -> str:
        """One ticket card."""
        warn, late = self.thresholds(card)
        return self._card.render(
            card=card,
            warn_s=warn,
            late_s=late,
            expo=self.settings.is_expo,
            progress=card.progress() if self.settings.is_expo else [],
        )

    def card_message(self, card: Card) -> dict[str, Any]:
        """A card as the page's WebSocket gets it: HTML plus what the page sorts and pages by."""
        return {
            "id": card.ticket_id,
            "html": self.card(card) if card.active else "",
            "active": card.active,
            "prio": card.priority,
            "fired": card.fired_ms,
            "num": card.number,
        }

    def page(self, cards: list[Card], boot: dict[str, Any]) -> str:
        """The whole kiosk page with the current cards already in it."""
        return self._page.render(
            settings=self.settings,
            title=" + ".join(s.upper() for s in self.settings.stations),
            cards=[(c, Markup(self.card(c))) for c in cards],  # noqa: S704 - rendered by our autoescaping template
            boot=boot,
        )

    def thresholds(self, card: Card) -> tuple[int, int]:
        """Age colours of a card: the strictest of this screen's stations the card is cooked at."""
        mine = [s for s in self.settings.stations if s == "expo" or s in card.stations] or list(self.settings.stations)
        pairs = [self.settings.thresholds(s) for s in mine]
        return min(t.warn_s for t in pairs), min(t.late_s for t in pairs)
