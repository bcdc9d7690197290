"""Money: integer minor units, commercial rounding, exact allocation, ticket pricing.

Rules (the same for every ticket, so totals never drift):

- Rounding is commercial, half away from zero (`div_round(5, 10) == 1`), never banker's.
- A line's gross is `(unit price + modifier prices) x qty`.
- Line discounts come off the line's gross in the order given (a percent of what is left, an amount
  capped at what is left). Ticket discounts then come off what is left of the whole ticket, and are
  spread over the lines in proportion to their remaining amounts by largest remainder, so the cents
  add up exactly and no line goes below zero.
- Tax is computed once per tax rate on the ticket's total for that rate, never per line: exclusive
  tax is `round(base x rate)` added on top; inclusive tax is `round(base x rate / (1 + rate))`
  extracted from the price. Each rate's tax is then spread over its lines by largest remainder, so
  every line knows its share (refunds use it).
- A "fixed" line (a share of an evenly split ticket) brings its amounts as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Sequence

BP = 10_000
"""Basis points in one whole: a rate of 875 bp is 8.75 %."""

DiscountKind = Literal["percent", "amount"]


def div_round(numerator: int, denominator: int) -> int:
    """`numerator / denominator` rounded half away from zero (commercial rounding)."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    quotient, remainder = divmod(abs(numerator), denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    return quotient if numerator >= 0 else -quotient


def percent_of(amount: int, percent: int) -> int:
    """`percent` % of `amount`, rounded commercially."""
    return div_round(amount * percent, 100)


def exclusive_tax(base: int, rate_bp: int) -> int:
    """Tax added on top of `base` at `rate_bp`."""
    return div_round(base * rate_bp, BP)


def inclusive_tax(gross: int, rate_bp: int) -> int:
    """Tax contained in a tax-inclusive `gross` at `rate_bp`."""
    return div_round(gross * rate_bp, BP + rate_bp)


def tax_of(base: int, rate_bp: int, inclusive: bool) -> int:
    """Tax of one rate's total: extracted when `inclusive`, else added on top."""
    return inclusive_tax(base, rate_bp) if inclusive else exclusive_tax(base, rate_bp)


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Split `total` (>= 0) in proportion to `weights` (>= 0) by largest remainder; parts sum to `total`.

    Ties go to the earlier weight. When every weight is zero the total is split evenly.
    """
    if total < 0 or any(w < 0 for w in weights):
        raise ValueError("allocate needs a non-negative total and weights")
    if not weights:
        if total:
            raise ValueError("cannot allocate a non-zero total over nothing")
        return []
    weight_sum = sum(weights)
    if weight_sum == 0:
        return allocate(total, [1] * len(weights))
    parts = [total * w // weight_sum for w in weights]
    left = total - sum(parts)
    order = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % weight_sum), i))
    for i in order[:left]:
        parts[i] += 1
    return parts


def split_evenly(total: int, count: int) -> list[int]:
    """Split `total` into `count` parts that differ by at most one cent; the earlier parts get more."""
    return allocate(total, [1] * count)


def cumulative_part(total: int, done: int, take: int, of: int) -> int:
    """The part of `total` for `take` more units out of `of` when `done` were already taken.

    Taking every unit, in any steps, adds up to `total` exactly (refunds of some of a line's qty).
    """
    if of <= 0 or done < 0 or take < 0 or done + take > of:
        raise ValueError("cumulative_part needs 0 <= done <= done + take <= of")
    return div_round(total * (done + take), of) - div_round(total * done, of)


def discount_amount(remaining: int, kind: DiscountKind, value: int) -> int:
    """What one discount takes off `remaining`: a percent of it, or an amount capped at it."""
    if remaining <= 0:
        return 0
    cut = percent_of(remaining, value) if kind == "percent" else value
    return max(0, min(cut, remaining))


@dataclass(frozen=True, slots=True)
class Amounts:
    """What one line comes to: `net = gross - discount`; `total = net + tax` unless the tax is inclusive."""

    gross: int = 0
    discount: int = 0
    net: int = 0
    tax: int = 0
    total: int = 0


@dataclass(frozen=True, slots=True)
class LineInput:
    """A line as pricing sees it: its gross, tax rate, own discounts, or fixed amounts."""

    gross: int
    rate_bp: int
    inclusive: bool
    discounts: tuple[tuple[DiscountKind, int], ...] = ()
    fixed: Amounts | None = None


@dataclass(frozen=True, slots=True)
class TaxAmount:
    """One tax rate's taxable base and tax on a ticket."""

    rate_bp: int
    inclusive: bool
    base: int
    tax: int


@dataclass(frozen=True, slots=True)
class Pricing:
    """A priced ticket: each line's amounts, the tax per rate, and the totals."""

    lines: tuple[Amounts, ...]
    taxes: tuple[TaxAmount, ...]
    subtotal: int
    discount: int
    tax: int
    tax_added: int
    total: int


def price(lines: Sequence[LineInput], ticket_discounts: Sequence[tuple[DiscountKind, int]] = ()) -> Pricing:
    """Price a ticket (see the module docstring); `total == subtotal - discount + tax_added`."""
    gross = [0 if line.fixed else max(0, line.gross) for line in lines]
    nets: list[int] = []
    line_cut: list[int] = []
    for line, g in zip(lines, gross, strict=True):
        left = g
        for kind, value in line.discounts:
            left -= discount_amount(left, kind, value)
        nets.append(left)
        line_cut.append(g - left)

    pool = sum(nets)
    ticket_cut = 0
    for kind, value in ticket_discounts:
        ticket_cut += discount_amount(pool - ticket_cut, kind, value)
    for i, share in enumerate(allocate(ticket_cut, nets) if ticket_cut else [0] * len(nets)):
        nets[i] -= share
        line_cut[i] += share

    groups: dict[tuple[int, bool], list[int]] = {}
    for i, line in enumerate(lines):
        if not line.fixed and nets[i] > 0:
            groups.setdefault((line.rate_bp, line.inclusive), []).append(i)
    taxes = [0] * len(lines)
    tax_totals: dict[tuple[int, bool], list[int]] = {}
    for (rate, inclusive), members in groups.items():
        base = sum(nets[i] for i in members)
        tax = tax_of(base, rate, inclusive)
        for i, share in zip(members, allocate(tax, [nets[i] for i in members]), strict=True):
            taxes[i] = share
        tax_totals[(rate, inclusive)] = [base, tax]

    amounts: list[Amounts] = []
    for i, line in enumerate(lines):
        if line.fixed:
            amounts.append(line.fixed)
            key = (line.rate_bp, line.inclusive)
            if line.fixed.net or line.fixed.tax:
                entry = tax_totals.setdefault(key, [0, 0])
                entry[0] += line.fixed.net
                entry[1] += line.fixed.tax
            continue
        net = nets[i]
        added = 0 if line.inclusive else taxes[i]
        amounts.append(Amounts(gross[i], line_cut[i], net, taxes[i], net + added))

    subtotal = sum(a.gross for a in amounts)
    discount = sum(a.discount for a in amounts)
    tax = sum(a.tax for a in amounts)
    total = sum(a.total for a in amounts)
    return Pricing(
        lines=tuple(amounts),
        taxes=tuple(TaxAmount(r, inc, b, t) for (r, inc), (b, t) in sorted(tax_totals.items())),
        subtotal=subtotal,
        discount=discount,
        tax=tax,
        tax_added=total - (subtotal - discount),
        total=total,
    )


def share_amounts(amounts: Sequence[Amounts], inclusive: Sequence[bool], count: int) -> list[list[Amounts]]:
    """Split priced lines into `count` even shares; `result[k][i]` is share k of line i.

    Each figure of each line (discount, net, tax) is split so the shares add up to the line exactly;
    the odd cents go to the share that has the least so far, so shares differ by a cent or two at most.
    """
    shares: list[list[Amounts]] = [[] for _ in range(count)]
    running = [0] * count
    for line, is_inclusive in zip(amounts, inclusive, strict=True):
        nets = _balanced(line.net, count, running)
        taxes = _balanced(line.tax, count, [r + n for r, n in zip(running, nets, strict=True)])
        cuts = _balanced(line.discount, count, [0] * count)
        for k in range(count):
            added = 0 if is_inclusive else taxes[k]
            part = Amounts(nets[k] + cuts[k], cuts[k], nets[k], taxes[k], nets[k] + added)
            shares[k].append(part)
            running[k] += part.total
    return shares


def _balanced(total: int, count: int, running: Sequence[int]) -> list[int]:
    base, left = divmod(total, count)
    parts = [base] * count
    for k in sorted(range(count), key=lambda k: (running[k], k))[:left]:
        parts[k] += 1
    return parts
