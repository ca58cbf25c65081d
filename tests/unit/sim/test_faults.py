"""Fault injection settings: validation, the dice, and which Save faults strike after the write."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from writeback_console.sim.faults import CLASSIC_FAULT_KINDS, FaultKind, Faults, parse_fault_kinds


def test_defaults_inject_nothing() -> None:
    faults = Faults()
    assert all(faults.draw(is_save) == (None, False) for is_save in (True, False) for _ in range(200))
    assert faults.fail_kinds == CLASSIC_FAULT_KINDS
    assert not faults.unauthorized and faults.latency_ms == 0


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("latency_ms", -1),
        ("fail_rate", 1.5),
        ("fail_rate", -0.1),
        ("hold_seconds", -1),
        ("after_write_share", 2),
        ("fail_kinds", ["500", "teapot"]),
    ],
)
def test_bad_settings_are_refused(setting: str, value: object) -> None:
    with pytest.raises(ValueError):
        Faults(**{setting: value})  # type: ignore[arg-type]
    faults = Faults()
    with pytest.raises(ValueError):
        faults.update(**{setting: value})


def test_update_refuses_unknown_settings() -> None:
    with pytest.raises(AttributeError):
        Faults().update(fail_ratio=1.0)


def test_fault_kinds_by_their_command_line_names() -> None:
    assert parse_fault_kinds(["500", " timeout", "drop", "malformed", "validation"]) == CLASSIC_FAULT_KINDS
    with pytest.raises(ValueError, match="unknown fault kind 'slow'"):
        parse_fault_kinds(["slow"])


def test_fail_rate_is_the_fraction_of_requests_that_fail() -> None:
    faults = Faults(fail_rate=0.3, seed=1)
    failed = sum(faults.draw(False)[0] is not None for _ in range(5000))
    assert 1300 < failed < 1700


def test_validation_issues_only_strike_save() -> None:
    faults = Faults(fail_rate=1.0, fail_kinds=["validation"], seed=2)
    assert faults.draw(False) == (None, False)
    assert faults.draw(True) == (FaultKind.VALIDATION, False)


def test_the_mix_uses_only_the_chosen_kinds() -> None:
    faults = Faults(fail_rate=1.0, fail_kinds=["500", "drop"], seed=3)
    kinds = Counter(faults.draw(False)[0] for _ in range(400))
    assert set(kinds) == {FaultKind.SERVER_ERROR, FaultKind.DROP}


def test_about_half_of_save_timeouts_and_drops_happen_after_the_write() -> None:
    faults = Faults(fail_rate=1.0, fail_kinds=["timeout", "drop"], seed=4)
    after = Counter(faults.draw(True)[1] for _ in range(2000))
    assert 850 < after[True] < 1150
    faults.after_write_share = 1.0
    assert all(faults.draw(True)[1] for _ in range(100))
    faults.after_write_share = 0.0
    assert not any(faults.draw(True)[1] for _ in range(100))
    # A lookup has nothing to write.
    faults.after_write_share = 1.0
    assert not any(faults.draw(False)[1] for _ in range(100))


def test_malformed_save_answers_always_follow_the_write_and_500s_never_do() -> None:
    faults = Faults(fail_rate=1.0, fail_kinds=["malformed"], after_write_share=0.0)
    assert faults.draw(True) == (FaultKind.MALFORMED, True)
    faults.update(fail_kinds=["500"], after_write_share=1.0)
    assert faults.draw(True) == (FaultKind.SERVER_ERROR, False)


def test_failing_emails_compare_case_insensitively() -> None:
    faults = Faults(fail_emails=["Bad@Example.org "])
    assert faults.is_failing_email("bad@example.ORG")
    assert not faults.is_failing_email("good@example.org")
    with pytest.raises(TypeError):
        faults.fail_emails = "bad@example.org"


def test_changes_from_other_threads_are_safe() -> None:
    faults = Faults(fail_rate=0.5, seed=5)
    stop = threading.Event()

    def flip() -> None:
        while not stop.is_set():
            faults.update(fail_rate=1.0, fail_kinds=["500"])
            faults.update(fail_rate=0.0, fail_kinds=["drop", "timeout"])

    thread = threading.Thread(target=flip)
    thread.start()
    try:
        seen = {faults.draw(True)[0] for _ in range(20000)}
    finally:
        stop.set()
        thread.join()
    assert seen <= {None, FaultKind.SERVER_ERROR, FaultKind.DROP, FaultKind.TIMEOUT}
