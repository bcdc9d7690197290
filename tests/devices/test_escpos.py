"""The decoder reads back every command the renderer emits; status bytes match the manual."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from devices.escpos.decoder import (
    AsbEnable,
    Barcode,
    Cut,
    Decoder,
    DrawerKick,
    Init,
    ProcessIdRequest,
    Qr,
    Raster,
    Recover,
    Setting,
    StatusRequest,
    Style,
    Text,
    Unknown,
    decode,
)
from devices.escpos.paper import Paper
from devices.printers import status as st
from devices.printers.render import Capabilities, RenderError, kick_bytes, money, render

CHIT = {
    "kind": "chit",
    "job_id": "job-chit1",
    "station": "grill",
    "ticket_id": "tk-1",
    "number": 42,
    "table": "5",
    "server": "Hugo",
    "channel": "dine_in",
    "course": 1,
    "fired_at": "2026-11-30T12:34:56.000Z",
    "priority": True,
    "lines": [
        {"qty": 2, "name": "Entrecôte", "modifiers": ["saignant", "frites"], "seat": 1, "allergy": "gluten"},
        {"qty": 1, "name": "Burger", "modifiers": [], "note": "no onions, extra pickles please", "voided": True},
    ],
}
RECEIPT = {
    "kind": "receipt",
    "job_id": "job-rc1",
    "store": {"name": "Test Bistro", "currency": "EUR"},
    "ticket_id": "tk-1",
    "number": 42,
    "table": "5",
    "server": "Hugo",
    "at": "2026-11-30T12:50:00.000Z",
    "lines": [{"qty": 2, "name": "Entrecôte", "amount": 5200, "modifiers": ["saignant"]}],
    "subtotal": 5200,
    "discount": 200,
    "taxes": [{"rate_bp": 1000, "inclusive": True, "base": 4545, "tax": 455}],
    "total": 5000,
    "payments": [{"kind": "cash", "amount": 5000, "tendered": 6000, "change": 1000, "tip": 0}],
    "balance": 0,
}


@pytest.mark.parametrize("paper_mm", [58, 80])
def test_chit_round_trips_through_the_decoder(paper_mm):
    caps = Capabilities.for_printer("TM-T88V", paper_mm)
    data = render(CHIT, caps, banners=("REPRINT", "ROUTED FROM kitchen-1"))
    ops = decode(data)
    assert not [op for op in ops if isinstance(op, Unknown)], "every emitted command is understood"
    paper = Paper.from_bytes(data)
    text = paper.text()
    for expected in ("GRILL", "#42", "Table 5", "COURSE 1", "RUSH", "REPRINT", "ROUTED FROM", "Entrecôte"):
        assert expected in text
    assert "saignant" in text
    assert "ALLERGY: gluten" in text
    assert "VOID 1 x Burger" in text
    assert "JOB job-chit1" in text
    assert isinstance(ops[0], Init)
    assert any(isinstance(op, Cut) for op in ops)
    width = caps.columns
    for line in paper.lines:
        cells = sum(len(run.text) * run.style.width for run in line.runs)
        assert cells <= width, f"{line.text!r} runs off {paper_mm} mm paper"
    big = [op for op in ops if isinstance(op, Text) and "Entrecôte" in op.text]
    assert big[0].style.width == 2
    assert big[0].style.bold
    banner = [op for op in ops if isinstance(op, Text) and "REPRINT" in op.text]
    assert banner[0].style.invert


def test_receipt_has_totals_taxes_tenders_and_a_qr_with_the_ticket():
    data = render(RECEIPT, Capabilities.for_printer("TM-T88V", 80))
    ops = decode(data)
    assert not [op for op in ops if isinstance(op, Unknown)]
    assert Qr("tk-1", 6) in ops
    text = Paper.from_bytes(data).text()
    for expected in ("RECEIPT #42", "Subtotal", "52.00", "Discount", "-2.00", "Tax 10% incl.", "4.55"):
        assert expected in text
    assert "TOTAL" in text
    assert "50.00 EUR" in text
    assert "Change" in text
    assert "10.00" in text


def test_check_has_a_tip_line_and_no_qr_on_a_printer_without_it():
    data = render(RECEIPT | {"kind": "check", "payments": []}, Capabilities.for_printer("simple", 58))
    ops = decode(data)
    assert not [op for op in ops if isinstance(op, Qr)]
    text = Paper.from_bytes(data).text()
    assert "CHECK #42" in text
    assert "Tip" in text
    assert "tk-1" in text


def test_report_prints_money_as_money():
    doc = {
        "kind": "report",
        "job_id": "job-z",
        "report_kind": "z",
        "shift_id": "sh-1",
        "store": "Test Bistro",
        "report": {"net_sales": 12345, "tickets_closed": 7, "payments": {"cash": {"count": 3, "amount": 4000}}},
    }
    text = Paper.from_bytes(render(doc, Capabilities())).text()
    assert "Z REPORT" in text
    assert "123.45" in text
    assert "tickets_closed" in text
    assert "40.00" in text


def test_unknown_document_is_a_clear_error():
    with pytest.raises(RenderError, match="unknown document kind"):
        render({"kind": "poem"}, Capabilities())
    with pytest.raises(RenderError, match="lacks 'lines'"):
        render({"kind": "chit", "station": "bar", "number": 1}, Capabilities())


def test_money():
    assert money(0) == "0.00"
    assert money(-5) == "-0.05"
    assert money(123456, "EUR") == "1234.56 EUR"


def test_decoder_handles_split_commands_and_status_and_control_bytes():
    data = (
        b"\x1b@"
        + st.status_request(1)
        + st.process_id_request(b"0042")
        + st.ASB_ALL
        + b"\x10\x05\x02"
        + kick_bytes(2)
        + kick_bytes(5)
        + b"\x07"
        + b"\x1dv0\x00\x01\x00\x02\x00\xff\x00"
        + b"\x1dk\x02123456789012\x00"
        + b"\x1dk\x49\x05ABCDE"
        + b"\x1dV\x00\x1dVB\x00\x1b3\x18\x1b2"
    )
    decoder = Decoder()
    ops = []
    for i in range(len(data)):  # one byte at a time: nothing is lost at a split
        ops.extend(decoder.feed(data[i : i + 1]))
    assert decoder.pending == 0
    assert ops == decode(data)
    assert ops[:5] == [Init(), StatusRequest(1), ProcessIdRequest(b"0042"), AsbEnable(15), Recover(2)]
    assert DrawerKick(2, 100, 200) in ops
    assert DrawerKick(5, 100, 200) in ops
    assert DrawerKick(None, 0, 0) in ops
    assert Raster(1, 2, b"\xff\x00") in ops
    assert Barcode(2, "123456789012") in ops
    assert Barcode(0x49, "ABCDE") in ops
    assert Cut(partial=False) in ops
    assert Cut(partial=True) in ops
    assert Setting("esc_3", b"\x18") in ops
    assert decode(b"\x1bZ")[0] == Unknown(b"\x1bZ")


def test_code_page_text_decodes_back():
    text = "Crème brûlée à 5€"
    ops = decode(b"\x1bt\x10" + text.encode("cp1252") + b"\n")
    assert ops[0] == Text(text, ops[0].style)  # type: ignore[union-attr]


def test_png_of_the_paper():
    paper = Paper.from_bytes(render(RECEIPT, Capabilities()))
    image = Image.open(io.BytesIO(paper.png()))
    assert image.width == 576
    assert image.height > 30 * 24
    assert image.getextrema() == (0, 255)  # ink on paper
    narrow = Paper.from_bytes(render(CHIT, Capabilities.for_printer("default", 58)), width_dots=384)
    assert Image.open(io.BytesIO(narrow.png())).width == 384


def test_png_draws_accented_letters_and_the_euro_sign_not_boxes():
    def glyph(char: str) -> bytes:
        paper = Paper.from_bytes(b"\x1bt\x13" + char.encode("cp858") + b"\n", width_dots=384)
        image = Image.open(io.BytesIO(paper.png()))
        return image.crop((0, 24, 12, 48)).tobytes()  # the first character cell of the first line

    missing = Paper(width_dots=384)
    missing.apply(Text("\ue000", Style()))  # a private-use code point: no face has a glyph there
    missing.flush()
    box = Image.open(io.BytesIO(missing.png())).crop((0, 24, 12, 48)).tobytes()
    assert min(box) == 0, "the missing-glyph box is drawn in ink"
    plain = glyph("e")
    for char in "éèêàçôûü€":
        drawn = glyph(char)
        assert drawn != box, f"{char!r} drew as the missing-glyph box"
        assert drawn != plain, f"{char!r} drew without its accent"
        assert min(drawn) == 0, f"{char!r} left no ink"


# -- status bytes, as PRINTERS.md lists them --------------------------------------------------
def test_dle_eot_bytes_match_the_manual():
    healthy = st.PrinterStatus()
    assert [st.encode_eot(healthy, n) for n in (1, 2, 3, 4)] == [0x12] * 4
    assert st.encode_eot(st.PrinterStatus(drawer_open=True), 1) == 0x16
    assert st.encode_eot(st.PrinterStatus(online=False), 1) == 0x1A
    assert st.encode_eot(st.PrinterStatus(cover_open=True), 2) == 0x16
    assert st.encode_eot(st.PrinterStatus(paper="end"), 2) == 0x32
    assert st.encode_eot(st.PrinterStatus(error=True), 2) == 0x52
    assert st.encode_eot(st.PrinterStatus(cutter_error=True), 3) == 0x1A
    assert st.encode_eot(st.PrinterStatus(paper="near_end"), 4) == 0x1E
    assert st.encode_eot(st.PrinterStatus(paper="end"), 4) == 0x7E


@pytest.mark.parametrize(
    ("n", "byte", "expected"),
    [
        (1, 0x16, {"drawer_open": True}),
        (1, 0x1A, {"online": False}),
        (2, 0x16, {"cover_open": True}),
        (2, 0x32, {"paper": "end"}),
        (2, 0x52, {"error": True}),
        (3, 0x1A, {"cutter_error": True, "error": True}),
        (4, 0x1E, {"paper": "near_end"}),
        (4, 0x72, {"paper": "end"}),
        (4, 0x7E, {"paper": "end"}),
    ],
)
def test_dle_eot_replies_parse(n, byte, expected):
    parsed = st.apply_eot(st.PrinterStatus(), n, byte)
    for key, value in expected.items():
        assert getattr(parsed, key) == value


def test_bad_status_bytes_are_refused():
    with pytest.raises(st.StatusError):
        st.apply_eot(st.PrinterStatus(), 1, 0x00)
    with pytest.raises(st.StatusError):
        st.parse_asb(b"\x12\x00\x00\x00")
    with pytest.raises(ValueError, match="four ASCII digits"):
        st.process_id_request(b"12")


def test_response_reader_tells_replies_asb_and_answers_apart():
    frame = st.encode_asb(st.PrinterStatus(cover_open=True, paper="near_end"))
    stream = bytes([0x12]) + frame + b"\x37\x22" + b"0007" + b"\x00" + bytes([0x72]) + b"\x00"
    reader = st.ResponseReader()
    out = []
    for i in range(len(stream)):
        out.extend(reader.feed(stream[i : i + 1]))
    assert out[0] == st.EotReply(0x12)
    assert isinstance(out[1], st.AsbFrame)
    assert out[1].status.cover_open
    assert out[1].status.paper == "near_end"
    assert not out[1].status.can_print
    assert out[2] == st.ProcessIdAnswer(b"0007")
    assert out[3] == st.EotReply(0x72)
    assert out[4] == st.Garbage(0)
    assert st.parse_asb(st.encode_asb(st.PrinterStatus())) == st.PrinterStatus()
