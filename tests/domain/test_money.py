"""Money arithmetic: rounding, allocation, tax, ticket pricing, even shares."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.domain import money
from hub.domain.money import Amounts, LineInput

amounts = st.integers(min_value=0, max_value=10_000_000)
rates = st.integers(min_value=0, max_value=10_000)


def test_commercial_rounding_goes_half_away_from_zero():
    assert money.div_round(5, 10) == 1
    assert money.div_round(15, 10) == 2  # not banker's (which would give 2 here and 0 for 5/10)
    assert money.div_round(25, 10) == 3
    assert money.div_round(-5, 10) == -1
    assert money.div_round(4, 10) == 0
    assert money.div_round(14, 10) == 1


def test_tax_examples():
    assert money.exclusive_tax(2700, 875) == 236  # 236.25
    assert money.exclusive_tax(1000, 875) == 88  # 87.5 rounds up
    assert money.inclusive_tax(300, 2000) == 50
    assert money.inclusive_tax(1000, 2000) == 167  # 166.67
    assert money.percent_of(1350, 10) == 135
    assert money.percent_of(1005, 10) == 101  # 100.5 rounds up


def test_allocate_examples():
    assert money.allocate(100, [1, 1, 1]) == [34, 33, 33]
    assert money.allocate(10, [0, 5, 5]) == [0, 5, 5]
    assert money.allocate(7, [0, 0]) == [4, 3]
    assert money.allocate(0, [3, 4]) == [0, 0]
    assert money.split_evenly(1001, 4) == [251, 250, 250, 250]
    with pytest.raises(ValueError, match="non-negative"):
        money.allocate(-1, [1])


@given(amounts, st.lists(st.integers(min_value=0, max_value=1_000_000), min_size=1, max_size=30))
def test_allocation_sums_exactly_and_is_proportional(total, weights):
    parts = money.allocate(total, weights)
    assert sum(parts) == total
    assert all(p >= 0 for p in parts)
    weight_sum = sum(weights)
    for part, weight in zip(parts, weights, strict=True):
        if weight_sum:
            exact = total * weight / weight_sum
            assert exact - 1 < part < exact + 1
            if weight == 0:
                assert part == 0


@given(amounts, st.integers(min_value=1, max_value=50), st.data())
def test_cumulative_parts_add_up_to_the_whole(total, of, data):
    steps = []
    left = of
    while left:
        take = data.draw(st.integers(min_value=1, max_value=left))
        steps.append(take)
        left -= take
    done = 0
    parts = []
    for take in steps:
        parts.append(money.cumulative_part(total, done, take, of))
        done += take
    assert sum(parts) == total
    assert all(p >= 0 for p in parts)


def _line(gross, rate=875, inclusive=False, discounts=()):
    return LineInput(gross=gross, rate_bp=rate, inclusive=inclusive, discounts=tuple(discounts))


def test_price_of_a_mixed_ticket():
    priced = money.price([_line(2700), _line(300, 2000, inclusive=True)])
    assert priced.subtotal == 3000
    assert priced.tax == 236 + 50
    assert priced.tax_added == 236
    assert priced.total == 3236
    assert [a.total for a in priced.lines] == [2936, 300]


def test_tax_is_computed_per_rate_on_the_total_not_per_line():
    # Three lines of 105 at 8.75 %: per line 9.1875 -> 9 each = 27; on the total 315 -> 27.5625 -> 28.
    priced = money.price([_line(105), _line(105), _line(105)])
    assert priced.tax == 28
    assert sum(a.tax for a in priced.lines) == 28


def test_discounts_come_off_proportionally_and_exactly():
    priced = money.price([_line(1000), _line(2000), _line(333)], [("amount", 1000)])
    assert priced.discount == 1000
    assert [a.discount for a in priced.lines] == [300, 600, 100]
    assert priced.subtotal - priced.discount == 2333
    assert priced.tax == money.exclusive_tax(2333, 875)


def test_line_then_ticket_discounts():
    priced = money.price([_line(1000, discounts=[("percent", 50)]), _line(1000)], [("percent", 10)])
    # line 1: 1000 - 500 = 500; pool 1500; 10 % = 150 spread 50/100
    assert [a.discount for a in priced.lines] == [550, 100]
    assert priced.discount == 650
    assert priced.total == 1350 + money.exclusive_tax(1350, 875)


def test_a_discount_never_goes_below_zero():
    priced = money.price([_line(500, discounts=[("amount", 900)])], [("amount", 100)])
    assert priced.lines[0].discount == 500
    assert priced.total == 0


line_inputs = st.builds(
    _line,
    st.integers(min_value=0, max_value=500_000),
    st.sampled_from([0, 500, 875, 2000]),
    st.booleans(),
    st.lists(st.tuples(st.sampled_from(["percent", "amount"]), st.integers(min_value=1, max_value=100)), max_size=2),
)
ticket_discounts = st.lists(
    st.one_of(
        st.tuples(st.just("percent"), st.integers(min_value=1, max_value=100)),
        st.tuples(st.just("amount"), st.integers(min_value=1, max_value=200_000)),
    ),
    max_size=3,
)


@given(st.lists(line_inputs, max_size=12), ticket_discounts)
def test_price_invariants(lines, discounts):
    priced = money.price(lines, discounts)
    assert priced.total == priced.subtotal - priced.discount + priced.tax_added
    assert priced.total == sum(a.total for a in priced.lines)
    assert priced.tax == sum(t.tax for t in priced.taxes) == sum(a.tax for a in priced.lines)
    for a in priced.lines:
        assert min(a.gross, a.discount, a.net, a.tax, a.total) >= 0
        assert a.net == a.gross - a.discount
    for t in priced.taxes:
        assert t.tax == money.tax_of(t.base, t.rate_bp, t.inclusive)


@given(st.lists(st.integers(min_value=0, max_value=100_000), min_size=1, max_size=10), rates, st.booleans())
def test_tax_of_a_sum_does_not_depend_on_how_lines_are_cut(grosses, rate, inclusive):
    apart = money.price([_line(g, rate, inclusive) for g in grosses])
    together = money.price([_line(sum(grosses), rate, inclusive)])
    assert apart.tax == together.tax
    assert apart.total == together.total


@given(st.lists(line_inputs, min_size=1, max_size=8), ticket_discounts, st.integers(min_value=2, max_value=12))
def test_even_shares_add_up_to_every_line_and_stay_close(lines, discounts, count):
    priced = money.price(lines, discounts)
    shares = money.share_amounts(priced.lines, [line.inclusive for line in lines], count)
    assert len(shares) == count
    for i, whole in enumerate(priced.lines):
        parts = [share[i] for share in shares]
        assert sum(p.net for p in parts) == whole.net
        assert sum(p.tax for p in parts) == whole.tax
        assert sum(p.discount for p in parts) == whole.discount
        assert sum(p.total for p in parts) == whole.total
        assert all(min(p.gross, p.discount, p.net, p.tax, p.total) >= 0 for p in parts)
    totals = [sum(p.total for p in share) for share in shares]
    assert sum(totals) == priced.total
    assert max(totals) - min(totals) <= 2 * len(lines)


def test_fixed_lines_keep_their_amounts():
    fixed = Amounts(gross=1000, discount=100, net=900, tax=79, total=979)
    priced = money.price([LineInput(gross=5000, rate_bp=875, inclusive=False, fixed=fixed), _line(1000)])
    assert priced.lines[0] == fixed
    assert priced.total == 979 + 1000 + 88
    assert priced.taxes[0].base == 1900
