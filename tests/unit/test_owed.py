"""The clean-ups a process owes (lab.runtime.owed): paid last-owed first, each once, all of them."""

from __future__ import annotations

from lab.runtime import owed


def test_what_is_owed_is_paid_last_first_and_once_and_settled_debts_are_not() -> None:
    paid: list[str] = []
    owed.owe("guest", lambda: paid.append("guest"))
    owed.owe("lab a", lambda: paid.append("lab a"))
    owed.owe("lab b", lambda: paid.append("lab b"))
    owed.settle("lab a")
    assert owed.pay_all() == []
    assert paid == ["lab b", "guest"]
    assert owed.pay_all() == [] and paid == ["lab b", "guest"]


def test_a_clean_up_that_fails_is_named_and_the_others_still_run() -> None:
    paid: list[str] = []

    def broken() -> None:
        raise ConnectionError("engine gone")

    owed.owe("guest", lambda: paid.append("guest"))
    owed.owe("lab a", broken)
    assert owed.pay_all() == ["lab a: engine gone"]
    assert paid == ["guest"]
