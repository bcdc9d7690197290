"""Topic builders of contract v1: the only place a topic string is spelled."""

from __future__ import annotations

from typing import Final

VERSION_ROOT: Final = "storehub/v1"


def event_kind(event_type: str) -> str:
    """The `event/{kind}` segment of an event type: its prefix (`ticket` for `ticket.fired`)."""
    return event_type.split(".", 1)[0]


class Topics:
    """Every topic of one store, under `storehub/v1/{store}/`."""

    def __init__(self, store_id: str) -> None:
        self.store_id = store_id
        self.root = f"{VERSION_ROOT}/{store_id}/"

    # -- hub and devices ------------------------------------------------------------------
    def hub_status(self) -> str:
        """Retained hub birth/LWT."""
        return f"{self.root}hub/status"

    def device_status(self, device_id: str) -> str:
        """Retained device birth/LWT with `sess`."""
        return f"{self.root}device/{device_id}/status"

    def device_do(self, device_id: str) -> str:
        """Device jobs from the hub (`drawer.kick`, `ota.offer`, `identify`)."""
        return f"{self.root}device/{device_id}/do"

    def cmd(self, device_id: str) -> str:
        """Commands from a device; the broker pins each device to its own."""
        return f"{self.root}cmd/{device_id}"

    def reply(self, device_id: str) -> str:
        """Replies to a device."""
        return f"{self.root}reply/{device_id}"

    def event(self, event_type_or_kind: str) -> str:
        """The event stream of an event type's kind (`event/ticket` for `ticket.fired`)."""
        return f"{self.root}event/{event_kind(event_type_or_kind)}"

    def kds(self, station: str) -> str:
        """A station's KDS stream (`expo` receives all)."""
        return f"{self.root}kds/{station}"

    # -- retained state -------------------------------------------------------------------
    def state_shift(self) -> str:
        """Current shift summary or `{"open": false}`."""
        return f"{self.root}state/shift"

    def state_menu(self) -> str:
        """The menu with its version."""
        return f"{self.root}state/menu"

    def state_availability(self) -> str:
        """The 86 board."""
        return f"{self.root}state/availability"

    def state_staff(self) -> str:
        """Active staff for login pickers (never PINs)."""
        return f"{self.root}state/staff"

    def state_printer(self, printer_id: str) -> str:
        """A printer's status."""
        return f"{self.root}state/printer/{printer_id}"

    # -- subscription filters -------------------------------------------------------------
    def all_topics(self) -> str:
        """Everything of this store (the hub's own ACL)."""
        return f"{self.root}#"

    def cmd_all(self) -> str:
        """Commands from every device (the hub subscribes to this)."""
        return f"{self.root}cmd/+"

    def device_status_all(self) -> str:
        """Every device's status."""
        return f"{self.root}device/+/status"

    def event_all(self) -> str:
        """Every event stream."""
        return f"{self.root}event/#"

    def state_all(self) -> str:
        """Every retained state topic."""
        return f"{self.root}state/#"

    # -- parsing --------------------------------------------------------------------------
    def device_of_cmd(self, topic: str) -> str | None:
        """The sending device of a `cmd/{device}` topic, or None for any other topic."""
        return self._segment(topic, "cmd/")

    def device_of_status(self, topic: str) -> str | None:
        """The device of a `device/{device}/status` topic, or None."""
        rest = self._segment(topic, "device/", allow_slash=True)
        if rest is None or not rest.endswith("/status"):
            return None
        device = rest.removesuffix("/status")
        return device if device and "/" not in device else None

    def _segment(self, topic: str, prefix: str, *, allow_slash: bool = False) -> str | None:
        head = self.root + prefix
        if not topic.startswith(head):
            return None
        rest = topic[len(head) :]
        if not rest or (not allow_slash and "/" in rest):
            return None
        return rest
