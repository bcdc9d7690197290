"""KDS screens end to end: a tablet fires, real `storehub kds run` processes show it in Chromium.

One hub, three screens (grill, cold, expo) and one browser for the whole module; each test uses
its own tickets. The broker test stops and restarts the hub, so it runs last.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest

from tests.hubproc import STAFF
from tests.mqtt_helpers import wait_until

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.kds_display.conftest import Store

pytestmark = pytest.mark.e2e

STEAK = {"menu_item_id": "steak-frites", "modifiers": ["saignant", "frites"]}
SNAILS = {"menu_item_id": "escargots"}
EGGS = {"menu_item_id": "oeufs-mayo"}
WAIT_MS = 15_000


@pytest.fixture(scope="module")
def screens(store: Store) -> dict[str, Any]:
    """The module's screens: grill (small pages, its own keys), cold, and expo."""
    screens = {
        "grill": store.screen(
            "kds-grill",
            "grill",
            'page_size = 4\nsound = false\n[keys]\nbump = ["Enter", "x"]\n[thresholds.grill]\nwarn_s = 2\nlate_s = 4\n',
            wait=False,
        ),
        "cold": store.screen("kds-cold", "cold", "page_size = 12\nsound = false\n", wait=False),
        "expo": store.screen("kds-expo", "expo", "sound = false\n", wait=False),
    }
    for kds in screens.values():
        kds.wait_ready()
    return screens


@pytest.fixture(scope="module")
def pages(browser: Any, screens: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """One tab per screen, loaded and connected."""
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    opened = {}
    for name, kds in screens.items():
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.goto(kds.url)
        page.wait_for_selector("body[data-ready='1']")
        opened[name] = page
    yield opened
    context.close()


def card(page: Any, tid: str) -> Any:
    return page.locator(f"#t-{tid}")


def number_of(store: Store, tid: str) -> int:
    result = store.tablet.call("sync", {})["result"]["snapshot"]["tickets"]
    return int(next(t["number"] for t in result if t["ticket_id"] == tid))


def item_ready(store: Store, tid: str) -> dict[str, Any]:
    return store.tablet.wait_event(
        lambda e: e.get("type") == "ticket.item_ready" and e.get("data", {}).get("ticket_id") == tid, timeout=15
    )


def test_a_fired_ticket_shows_on_its_stations_only_with_allergies_highlighted(store: Store, pages: dict[str, Any]):
    tid, number = store.ticket(
        [{**STEAK, "allergy": "peanuts", "note": "no salt", "seat": 2}, EGGS], table_id="t2", guests=2
    )
    grill, cold, expo = pages["grill"], pages["cold"], pages["expo"]
    card(grill, tid).wait_for()
    head = card(grill, tid).locator(".card-head").inner_text()
    assert f"#{number}" in head
    assert "Table 2" in head
    assert card(grill, tid).locator(".server").inner_text() == "Hugo"
    assert card(grill, tid).locator("li.item .name").all_inner_texts() == ["Steak frites"]
    assert card(grill, tid).locator(".mods li").all_inner_texts() == ["Rare", "Fries"]
    assert card(grill, tid).locator(".note").inner_text() == "no salt"
    assert card(grill, tid).locator(".seat").inner_text() == "S2"
    assert card(grill, tid).locator(".also").inner_text() == "ALSO AT: COLD"
    allergy = card(grill, tid).locator(".allergy")
    assert allergy.inner_text() == "ALLERGY: PEANUTS"
    assert allergy.evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(213, 0, 0)"

    card(cold, tid).wait_for()
    assert card(cold, tid).locator("li.item .name").all_inner_texts() == ["Eggs mayonnaise"]
    assert card(cold, tid).locator(".allergy").count() == 0

    card(expo, tid).wait_for()
    assert sorted(card(expo, tid).locator("li.item .name").all_inner_texts()) == ["Eggs mayonnaise", "Steak frites"]
    assert card(expo, tid).locator(".progress li").all_inner_texts() == ["COLD 0/1", "GRILL 0/1"]
    # A grill-only ticket never reaches the cold screen (the hub's stream and the broker's ACL).
    grill_only, _ = store.ticket([SNAILS])
    card(expo, grill_only).wait_for()
    card(grill, grill_only).wait_for()
    assert card(cold, grill_only).count() == 0
    snails = grill.locator("#allday li", has_text="Snails (6)")
    snails.wait_for()
    assert snails.inner_text().split("\n") == ["1", "Snails (6)"]


def test_bumping_an_item_tells_the_tablet_and_expo(store: Store, pages: dict[str, Any]):
    tid, number = store.ticket([SNAILS, EGGS])
    grill, expo = pages["grill"], pages["expo"]
    card(grill, tid).wait_for()
    card(grill, tid).locator("li.item button.line").first.click()
    event = item_ready(store, tid)
    assert event["data"]["station"] == "grill"
    assert [line["line_id"] for line in event["data"]["lines"]] == [f"{tid}-0"]
    assert event["data"]["lines"][0]["fired_to_ready_s"] is not None  # speed of service in the ledger
    card(grill, tid).wait_for(state="detached")
    grill.locator("#recall button", has_text=f"#{number}").wait_for()
    expo.locator(f"#t-{tid} .progress li", has_text="GRILL 1/1").wait_for()
    wait_until(lambda: "avg" in grill.locator("#avg").inner_text() and "—" not in grill.locator("#avg").inner_text(),
               timeout=10, what="the average ticket time")  # fmt: skip

    # expo bumps the plate out once the cold station is done too
    cold = pages["cold"]
    card(cold, tid).locator("button.bump").click()
    expo.locator(f"#t-{tid}.all-ready").wait_for()
    card(expo, tid).locator("button.bump").click()
    card(expo, tid).wait_for(state="detached")


def test_a_voided_item_is_struck_through_and_flashes(store: Store, pages: dict[str, Any]):
    grill = pages["grill"]
    tid, _ = store.ticket([SNAILS, {**STEAK, "qty": 2}])
    card(grill, tid).wait_for(state="attached")
    line = card(grill, tid).locator(f"li.item[data-line='{tid}-1']")
    assert "flash" not in (line.get_attribute("class") or "")
    manager = {"employee_id": STAFF["mgr"][0], "pin": STAFF["mgr"][1]}
    body = {"ticket_id": tid, "line_id": f"{tid}-1", "reason": "guest changed their mind"}
    voided = store.tablet.call("ticket.void_item", body, auth=store.token, approve=manager)
    assert voided["ok"], voided
    card(grill, tid).locator(f"li.item.s-voided.flash[data-line='{tid}-1']").wait_for(state="attached")
    name = card(grill, tid).locator(f"li.item[data-line='{tid}-1'] .name")
    assert "line-through" in name.evaluate("el => getComputedStyle(el).textDecorationLine")
    assert "flash" not in (card(grill, tid).locator(f"li.item[data-line='{tid}-0']").get_attribute("class") or "")


def test_expo_rushes_a_ticket_and_the_kitchen_86s_an_item(store: Store, pages: dict[str, Any]):
    grill, expo = pages["grill"], pages["expo"]
    calm, _ = store.ticket([SNAILS])
    rush, _ = store.ticket([SNAILS])
    card(expo, rush).wait_for(state="attached")
    expo.evaluate(f"document.getElementById('t-{rush}').scrollIntoView()")
    card(expo, rush).locator("button[data-act='priority']").click()
    event = store.tablet.wait_event(
        lambda e: e.get("type") == "ticket.priority_changed" and e.get("data", {}).get("ticket_id") == rush, timeout=15
    )
    assert event["by"]["device"] == "kds-expo"
    for page in (grill, expo):
        page.locator(f"#t-{rush}.priority").wait_for(state="attached")
        first = page.locator("#grid .card").first

        def pinned(first: Any = first) -> bool:
            return bool(first.get_attribute("data-tid") == rush)

        wait_until(pinned, timeout=10, what="the rush ticket pinned first")
    assert card(grill, calm).count() == 1

    grill.locator("#eighty-six summary").click()
    grill.locator("#menu button[data-item='escargots']").click()
    grill.locator("#menu button[data-item='escargots'].off").wait_for()
    refused = store.tablet.call("ticket.open", {"ticket_id": "T86", "channel": "takeout"}, auth=store.token)
    assert refused["ok"]
    refused = store.tablet.call(
        "ticket.add_items",
        {"ticket_id": "T86", "items": [{"line_id": "T86-0", "qty": 1, **SNAILS}]},
        auth=store.token,
    )
    assert refused["error"]["code"] == "item_unavailable"
    grill.locator("#menu button[data-item='escargots']").click()  # back on
    grill.locator("#menu button[data-item='escargots'].on").wait_for()
    grill.locator("#eighty-six summary").click()


def test_bump_bar_keys_select_bump_undo_and_page(store: Store, pages: dict[str, Any]):
    grill = pages["grill"]
    grill.bring_to_front()
    while grill.locator("#grid .card").count():
        first = grill.locator("#grid .card:visible").first
        tid = first.get_attribute("data-tid")
        first.locator("button.bump").click()
        card(grill, tid).wait_for(state="detached")
    tickets = [store.ticket([SNAILS])[0] for _ in range(6)]
    for tid in tickets:
        card(grill, tid).wait_for(state="attached")
    assert grill.locator("#page-no").inner_text() == "page 1/2"
    grill.keyboard.press("2")
    assert card(grill, tickets[1]).get_attribute("class") is not None
    assert "selected" in (card(grill, tickets[1]).get_attribute("class") or "")
    grill.keyboard.press("x")  # the bump key configured for this screen
    item_ready(store, tickets[1])
    card(grill, tickets[1]).wait_for(state="detached")
    grill.keyboard.press("u")  # undo: a recall of the same lines
    store.tablet.wait_event(
        lambda e: e.get("type") == "ticket.recalled" and e.get("data", {}).get("ticket_id") == tickets[1], timeout=15
    )
    card(grill, tickets[1]).wait_for()
    grill.keyboard.press("ArrowRight")
    assert grill.locator("#page-no").inner_text() == "page 2/2"
    visible = [c for c in grill.locator("#grid .card").all() if c.is_visible()]
    assert [c.get_attribute("data-tid") for c in visible] == tickets[4:]
    grill.keyboard.press("1")
    grill.keyboard.press("Enter")
    item_ready(store, tickets[4])
    grill.locator("#recall button", has_text=f"#{number_of(store, tickets[4])}").wait_for()
    grill.keyboard.press("r")  # recall the last bumped ticket
    store.tablet.wait_event(
        lambda e: e.get("type") == "ticket.recalled" and e.get("data", {}).get("ticket_id") == tickets[4], timeout=15
    )
    card(grill, tickets[4]).wait_for(state="attached")
    grill.keyboard.press("ArrowLeft")
    assert grill.locator("#page-no").inner_text() == "page 1/2"


def test_a_new_ticket_beeps_unless_muted_and_the_choice_survives_a_reload(store: Store, pages: dict[str, Any]):
    cold = pages["cold"]  # its settings start muted (sound = false)
    mute = cold.locator("#mute")
    assert mute.inner_text() == "Sound off"
    mute.click()
    assert mute.inner_text() == "Sound on"
    before = cold.evaluate("window.kds.beeps()")
    tid, _ = store.ticket([EGGS])
    card(cold, tid).wait_for(state="attached")
    wait_until(lambda: cold.evaluate("window.kds.beeps()") == before + 1, timeout=10, what="a beep")
    cold.keyboard.press("m")  # the mute key
    assert mute.inner_text() == "Sound off"
    muted, _ = store.ticket([EGGS])
    card(cold, muted).wait_for(state="attached")
    assert cold.evaluate("window.kds.beeps()") == before + 1
    mute.click()
    cold.reload()
    cold.wait_for_selector("body[data-ready='1']")
    assert cold.locator("#mute").inner_text() == "Sound on"
    cold.locator("#mute").click()


def test_a_reload_loses_nothing(store: Store, pages: dict[str, Any], screens: dict[str, Any]):
    grill = pages["grill"]

    def recall_on_page() -> list[str]:
        return [b.get_attribute("data-tid") or "" for b in grill.locator("#recall button").all()]

    def recall_on_screen() -> list[str]:
        return [r["id"] for r in screens["grill"].state()["meta"]["recall"]]

    wait_until(lambda: recall_on_page() == recall_on_screen(), timeout=10, what="the recall list on the page")
    # this screen's thresholds (warn 2 s, late 4 s) colour its cards; the cold screen keeps the defaults
    late = grill.locator("#grid .card.age-late").first
    late.wait_for()
    assert late.evaluate("el => getComputedStyle(el).borderTopColor") == "rgb(198, 40, 40)"
    assert pages["cold"].locator("#grid .card.age-late").count() == 0
    before = grill.locator("#grid .card").evaluate_all("cards => cards.map(c => c.dataset.tid)")
    recall = recall_on_page()
    assert before
    assert recall
    grill.reload()
    grill.wait_for_selector("body[data-ready='1']")
    assert grill.locator("#grid .card").evaluate_all("cards => cards.map(c => c.dataset.tid)") == before
    assert recall_on_page() == recall


def test_two_hundred_open_tickets_render_and_the_screen_still_bumps(
    store: Store, pages: dict[str, Any], screens: dict[str, Any]
):
    cold = pages["cold"]
    cold.bring_to_front()
    start = int(re.sub(r"\D", "", cold.locator("#open-count").inner_text()))
    tab = store.tablet
    ids = [f"big{i}" for i in range(200)]
    for i, tid in enumerate(ids):
        tab.send("ticket.open", {"ticket_id": tid, "channel": "takeout", "name": f"Guest {i}"}, auth=store.token)
        tab.send("ticket.add_items", {"ticket_id": tid, "items": [{"line_id": f"{tid}-0", "qty": 1, **EGGS}]},
                 auth=store.token)  # fmt: skip
        tab.send("ticket.fire", {"ticket_id": tid}, auth=store.token)
    assert tab.call("ticket.priority", {"ticket_id": ids[-1], "priority": True}, auth=store.token)["ok"]
    cold.locator("#open-count", has_text=f"{start + 200} open").wait_for()
    assert cold.locator("#grid .card").count() == start + 200
    allday = cold.locator("#allday li").first
    wanted = [str(start + 200), "Eggs", "mayonnaise"]
    wait_until(lambda: allday.inner_text().split() == wanted, timeout=10, what="the all-day count")
    # the rush ticket is pinned first, and the bump bar still works
    first = cold.locator("#grid .card").first
    wait_until(lambda: first.get_attribute("data-tid") == ids[-1], timeout=10, what="the rush ticket first")
    cold.keyboard.press("1")
    cold.keyboard.press("Enter")
    item_ready(store, ids[-1])
    cold.locator("#open-count", has_text=f"{start + 199} open").wait_for()
    # A restarted screen rebuilds all of it from the hub's snapshot; the page reconnects by itself.
    screens["cold"].stop()
    cold.locator("#offline", has_text="unreachable").wait_for()
    screens["cold"].start()
    cold.locator("#offline").wait_for(state="hidden")
    cold.locator("#open-count", has_text=f"{start + 199} open").wait_for()
    assert card(cold, ids[-1]).count() == 0
    assert cold.locator("#grid .card").count() == start + 199


def test_a_bump_while_the_broker_is_down_is_delivered_exactly_once(store: Store, pages: dict[str, Any], screens):
    grill = pages["grill"]
    grill.bring_to_front()
    tid, _ = store.ticket([SNAILS])
    card(grill, tid).wait_for(state="attached")
    seq_before = store.tablet.call("sync", {})["seq"]
    store.tablet.close()
    store.hub.stop()  # the hub takes its broker down with it
    grill.locator("#offline").wait_for()
    assert "OFFLINE" in grill.locator("#offline").inner_text()
    for _ in range(2):
        grill.keyboard.press("ArrowLeft")
    target = card(grill, tid)
    if not target.is_visible():
        grill.keyboard.press("ArrowRight")
    target.locator("button.bump").click()
    target.wait_for(state="detached")  # the cook sees it gone at once
    grill.locator("#queued", has_text="1 waiting to send").wait_for()
    state = screens["grill"].state()
    assert state["meta"]["queued"] == 1
    store.hub.start()
    grill.locator("#offline").wait_for(state="hidden")
    wait_until(lambda: screens["grill"].state()["meta"]["queued"] == 0, timeout=20, what="the queue to drain")
    store.tablet = store.hub.tablet("tab-kds", events=True, creds=store.tablet.creds)
    events = store.tablet.call("sync", {"since_seq": seq_before})["result"]["events"]
    ready = [e for e in events if e["type"] == "ticket.item_ready" and e["data"]["ticket_id"] == tid]
    assert len(ready) == 1
    assert card(grill, tid).count() == 0
