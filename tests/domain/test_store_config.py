"""`store.configure`: the store's name, currency and clock go into its ledger, once per change."""

from __future__ import annotations

from datetime import time

from .harness import store


def test_the_store_is_ledgered_once_and_again_only_when_its_config_changes():
    h = store(shift=False, logins=())
    assert h.admin("store.configure") == {"changed": True}
    assert h.last("store.configured").data == {
        "store_id": "s1",
        "name": "Test Bistro",
        "currency": "USD",
        "timezone": "America/New_York",
        "business_day_starts_at": "04:00",
    }
    assert h.admin("store.configure") == {"changed": False}, "a restart with the same config writes nothing"
    h.settings = h.settings.model_copy(update={"timezone": "Europe/Paris", "business_day_starts_at": time(5, 30)})
    assert h.admin("store.configure") == {"changed": True}
    assert len(h.events("store.configured")) == 2
    assert h.last("store.configured").data["timezone"] == "Europe/Paris"
    assert h.last("store.configured").data["business_day_starts_at"] == "05:30"
    assert h.state.configured is not None
    assert h.state.configured.timezone == "Europe/Paris"
    assert h.replay().configured == h.state.configured


def test_only_the_operator_configures_the_store():
    h = store()
    error = h.fail("store.configure", {}, as_="mgr", code="forbidden")
    assert "Configuring the store" in error.message
