"""docs/marketplace.md's worked example is what the code computes: the numbers are parsed from
the doc (its table and its bold results) and recomputed with the published functions."""

from __future__ import annotations

import re
from pathlib import Path

from sealroom.wire.credits import (
    BPS,
    WORKED_EXAMPLE,
    PricedInput,
    Quote,
    price_request,
    settlement_postings,
)

DOC = Path(__file__).resolve().parent.parent / "docs" / "marketplace.md"
OWNER = {"A": "sr1" + "a" * 52, "B": "sr1" + "b" * 52}
REQUESTER = "sr1" + "c" * 52


def _example() -> tuple[list[list[str]], list[int]]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Worked example", 1)[1]
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in section.splitlines()
        if re.match(r"^\|\s*[AB]\s*\|", line)
    ]
    bold = [int(n) for n in re.findall(r"\*\*(\d+)\*\*", section)]
    return rows, bold


def _schedule_numbers() -> dict[str, int]:
    section = DOC.read_text(encoding="utf-8").split("## Worked example", 1)[1]
    line = section.split("An exact", 1)[0]
    line = " ".join(line.split())
    return {k: int(v) for k, v in re.findall(r"([a-z0-9_]+(?: aggregate)?) (\d+)", line)}


def test_the_worked_example_is_what_the_code_computes() -> None:
    numbers = _schedule_numbers()
    s = WORKED_EXAMPLE
    assert numbers == {
        "base_per_input": s.base_per_input,
        "per_1k_rows": s.per_1k_rows,
        "per_mib": s.per_mib,
        "class_bps aggregate": s.class_bps["aggregate"],
        "exact_bps": s.exact_bps,
        "dp_bps": s.dp_bps,
        "fee_bps": s.fee_bps,
        "base_reward": s.base_reward,
    }
    rows, bold = _example()
    assert [r[0] for r in rows] == ["A", "B"]
    inputs = [
        PricedInput(
            dataset="sha256:" + r[0].lower() * 64,
            owner=OWNER[r[0]],
            rows=int(r[1]),
            length=int(r[2]),
        )
        for r in rows
    ]

    def quote(dp: bool) -> Quote:
        return price_request(
            s,
            computation="aggregate-stats",
            privacy_class="aggregate",
            dp=dp,
            inputs=inputs,
            requester=REQUESTER,
            recipients=[REQUESTER],
        )

    exact, dp = quote(False), quote(True)
    for row, e, d in zip(rows, exact.inputs, dp.inputs, strict=True):
        units = int(row[3])
        assert units * s.class_bps["aggregate"] * s.exact_bps // BPS**2 == e.amount
        assert [int(row[4]), int(row[5])] == [e.amount, d.amount]
        assert int(row[6]) == e.amount - e.amount * s.fee_bps // BPS
    price_exact, price_dp, fee_exact, fee_dp, rewards = bold
    assert (price_exact, fee_exact) == (exact.price, exact.fee)
    assert (price_dp, fee_dp) == (dp.price, dp.fee)
    assert rewards == 3 * s.base_reward
    postings = dict(
        settlement_postings("escrow:x", [(i.owner, i.amount) for i in exact.inputs], s.fee_bps)
    )
    assert postings["platform"] == fee_exact
    assert [postings[f"party:{OWNER[r[0]]}"] for r in rows] == [int(r[6]) for r in rows]
    assert sum(postings.values()) == 0


def test_the_free_tier_and_a_disabled_schedule_cost_nothing() -> None:
    mine = PricedInput(dataset="sha256:" + "a" * 64, owner=REQUESTER, rows=10, length=10)
    theirs = PricedInput(dataset="sha256:" + "b" * 64, owner=OWNER["B"], rows=10, length=10)
    mutual = price_request(
        WORKED_EXAMPLE,
        computation="x",
        privacy_class="aggregate",
        dp=False,
        inputs=[mine, theirs],
        requester=REQUESTER,
        recipients=[REQUESTER, OWNER["B"]],
    )
    assert mutual.free
    assert mutual.price == 0
    one_sided = price_request(
        WORKED_EXAMPLE,
        computation="x",
        privacy_class="aggregate",
        dp=False,
        inputs=[mine, theirs],
        requester=REQUESTER,
        recipients=[REQUESTER],
    )
    assert not one_sided.free
    assert one_sided.price > 0
