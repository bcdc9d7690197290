"""Topics are spelled under the store's root and parsed back only from that store."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.contract import Topics

DEVICE_IDS = st.from_regex(r"[a-z0-9-]{1,32}", fullmatch=True)


def test_topics_live_under_the_store_root():
    topics = Topics("store-1")

    assert topics.cmd("tab-03") == "storehub/v1/store-1/cmd/tab-03"
    assert topics.reply("tab-03") == "storehub/v1/store-1/reply/tab-03"
    assert topics.device_status("tab-03") == "storehub/v1/store-1/device/tab-03/status"
    assert topics.device_do("drawer-1") == "storehub/v1/store-1/device/drawer-1/do"
    assert topics.hub_status() == "storehub/v1/store-1/hub/status"
    assert topics.kds("grill") == "storehub/v1/store-1/kds/grill"
    assert topics.state_printer("kitchen") == "storehub/v1/store-1/state/printer/kitchen"


def test_event_topic_is_the_type_prefix():
    topics = Topics("store-1")

    assert topics.event("ticket.fired") == "storehub/v1/store-1/event/ticket"
    assert topics.event("print.printed") == "storehub/v1/store-1/event/print"
    assert topics.event("ticket") == topics.event("ticket.items_added")


@given(DEVICE_IDS)
def test_device_of_cmd_round_trips(device):
    topics = Topics("store-1")

    assert topics.device_of_cmd(topics.cmd(device)) == device


@given(DEVICE_IDS)
def test_device_of_status_round_trips(device):
    topics = Topics("store-1")

    assert topics.device_of_status(topics.device_status(device)) == device


@pytest.mark.parametrize("other_store", ["store-2", "store-10", "store", "STORE-1"])
def test_other_stores_topics_are_refused(other_store):
    topics = Topics("store-1")
    other = Topics(other_store)

    assert topics.device_of_cmd(other.cmd("tab-03")) is None
    assert topics.device_of_status(other.device_status("tab-03")) is None


@pytest.mark.parametrize(
    "topic",
    [
        "storehub/v1/store-1/cmd/",
        "storehub/v1/store-1/cmd/tab-03/extra",
        "storehub/v1/store-1/reply/tab-03",
        "storehub/v2/store-1/cmd/tab-03",
        "storehub/v1/store-1/device/tab-03/do",
    ],
)
def test_other_topics_name_no_sending_device(topic):
    assert Topics("store-1").device_of_cmd(topic) is None


@pytest.mark.parametrize(
    "topic",
    [
        "storehub/v1/store-1/device//status",
        "storehub/v1/store-1/device/tab-03/do",
        "storehub/v1/store-1/device/a/b/status",
        "storehub/v1/store-1/device/status",
        "storehub/v1/store-1/cmd/tab-03",
    ],
)
def test_other_topics_name_no_status_device(topic):
    assert Topics("store-1").device_of_status(topic) is None


def test_subscription_filters():
    topics = Topics("store-1")

    assert topics.cmd_all() == "storehub/v1/store-1/cmd/+"
    assert topics.device_status_all() == "storehub/v1/store-1/device/+/status"
    assert topics.event_all() == "storehub/v1/store-1/event/#"
    assert topics.state_all() == "storehub/v1/store-1/state/#"
