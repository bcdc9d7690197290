"""The serial line protocol's framing and checksums."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_tools import protocol
from firmware_tools.protocol import DEVICE, HOST, Frame, FrameError


def test_crc_matches_the_ccitt_false_check_value():
    assert protocol.crc16(b"123456789") == 0x29B1


def test_a_frame_on_the_wire():
    assert Frame(HOST, 0x1F, "SET", ("hub_host", "192.168.1.10")).encode() == b">1F SET hub_host 192.168.1.10*82B4\r\n"
    assert protocol.decode(b"<1F OK*9C2D\r\n") == Frame(DEVICE, 0x1F, "OK")


@given(
    seq=st.integers(0, 255),
    verb=st.sampled_from(["SET", "GET", "OK", "ERR"]),
    args=st.lists(st.text(max_size=40), max_size=3),
)
def test_any_values_round_trip(seq, verb, args):
    frame = Frame(HOST, seq, verb, tuple(args))
    body = " ".join(["00", verb, *(quote(arg, safe="") for arg in args)])
    if len(body) + 8 > protocol.MAX_FRAME:  # percent-encoded non-ASCII can outgrow a frame: refused, never cut
        with pytest.raises(FrameError, match="exceeds"):
            frame.encode()
        return
    assert protocol.decode(frame.encode()) == frame


@pytest.mark.parametrize(
    "line",
    [
        b">1F SET hub_host 192.168.1.10*82B5\r\n",  # checksum off by one
        b">1F SET hub_host 192.168.1.11*82B4\r\n",  # one flipped character
        b">1F SET hub_host 192.168.1.10\r\n",  # no checksum
        b"garbage\r\n",
        b">1F set lower*0000\r\n",
        b"\xff\xfe\r\n",
        b">" + b"A" * 600 + b"\r\n",
    ],
)
def test_damaged_lines_are_refused(line):
    with pytest.raises(FrameError):
        protocol.decode(line)


def test_oversized_frames_cannot_be_built():
    with pytest.raises(FrameError, match="exceeds"):
        Frame(HOST, 1, "SET", ("wifi_ssid", "x" * 600)).encode()


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("device_id", "Drawer_1", "device_id must be 1-32"),
        ("wifi_psk", "short", "wifi_psk must be 8-63"),
        ("wifi_ssid", "x" * 33, "wifi_ssid must be 1-32 bytes"),
        ("hub_port", "70000", "hub_port must be a TCP port"),
        ("hub_host", "not a host", "hub_host must be a host name"),
        ("ota_key", "bm90IGEga2V5", "ota_key must be a base64 Ed25519 public key"),
        ("colour", "blue", "unknown setting 'colour'"),
    ],
)
def test_settings_are_checked(key, value, problem):
    assert problem in (protocol.check_setting(key, value) or "")


def test_good_settings_pass():
    assert protocol.check_setting("wifi_psk", "a" * 64) is None
    assert protocol.check_setting("hub_host", "hub.bistro.lan") is None
    assert protocol.check_setting("ota_key", "A" * 43 + "=") is None
