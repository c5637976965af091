"""The pairing code guard: format, attempts, cool-down (time passed in)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node_agent.host.pairing_gate import (
    ALPHABET,
    CodeRefused,
    PairingGate,
    format_code,
    new_code,
    normalize_code,
)
from protos.security.pairing_proof import pairing_proof


def test_codes_are_three_groups_of_four_from_the_alphabet() -> None:
    codes = {new_code() for _ in range(200)}
    assert len(codes) == 200
    for code in codes:
        assert re.fullmatch(f"[{ALPHABET}]{{4}}-[{ALPHABET}]{{4}}-[{ALPHABET}]{{4}}", code)


def test_a_code_may_be_typed_in_lower_case_without_dashes() -> None:
    gate = PairingGate()
    gate.check(" 7kq2m9xd-4hta ", "7KQ2-M9XD-4HTA", now=0.0)
    assert format_code("7kq2m9xd4hta") == "7KQ2-M9XD-4HTA"


def test_wrong_codes_count_down_then_cool_down_then_open_again() -> None:
    gate = PairingGate(max_attempts=3, cooldown_s=60)
    for left in (2, 1):
        with pytest.raises(CodeRefused) as e:
            gate.check("AAAA-AAAA-AAAA", "7KQ2-M9XD-4HTA", now=10.0)
        assert e.value.attempts_left == left and "attempt" in str(e.value)
    with pytest.raises(CodeRefused) as e:
        gate.check("AAAA-AAAA-AAAA", "7KQ2-M9XD-4HTA", now=10.0)
    assert e.value.cooldown_s == 60
    # During the cool-down even the right code is refused, with the time left.
    with pytest.raises(CodeRefused) as e:
        gate.check("7KQ2-M9XD-4HTA", "7KQ2-M9XD-4HTA", now=40.0)
    assert e.value.cooldown_s == pytest.approx(30) and "wait 30 s" in str(e.value)
    gate.check("7KQ2-M9XD-4HTA", "7KQ2-M9XD-4HTA", now=70.0)


def test_a_right_code_resets_the_count() -> None:
    gate = PairingGate(max_attempts=2)
    with pytest.raises(CodeRefused):
        gate.check("X", "7KQ2-M9XD-4HTA", now=0)
    gate.check("7KQ2-M9XD-4HTA", "7KQ2-M9XD-4HTA", now=0)
    with pytest.raises(CodeRefused) as e:
        gate.check("X", "7KQ2-M9XD-4HTA", now=0)
    assert e.value.attempts_left == 1


@given(st.lists(st.tuples(st.booleans(), st.floats(0, 30)), max_size=60))
def test_never_more_than_max_attempts_wrong_codes_per_cooldown(steps) -> None:
    """Whatever the sequence, at most max_attempts wrong codes are judged in any window
    of cooldown_s between two right ones; the right code passes unless the gate is cooling down."""
    gate = PairingGate(max_attempts=3, cooldown_s=60)
    now, judged, runs = 0.0, [], []
    code = "7KQ2-M9XD-4HTA"
    for right, dt in steps:
        now += dt
        try:
            gate.check(code if right else "WRONG", code, now)
            assert right
            runs.append(judged)  # the right code: a new run of guesses begins
            judged = []
        except CodeRefused as e:
            if str(e).startswith("wrong pairing code"):
                assert not right
                judged.append(now)
            else:
                assert e.cooldown_s > 0
    for run in [*runs, judged]:
        for t in run:
            assert sum(t <= u < t + 60 for u in run) <= 3
    assert normalize_code(code) == "7KQ2M9XD4HTA"


def test_the_proof_binds_the_code_to_the_certificate_and_hides_it() -> None:
    fp_real, fp_impostor = "ab" * 32, "cd" * 32
    proof = pairing_proof("7kq2-m9xd 4hta", fp_real)
    assert proof == pairing_proof("7KQ2M9XD4HTA", fp_real.upper())  # as typed, either case
    assert proof != pairing_proof("7KQ2M9XD4HTA", fp_impostor)  # worthless elsewhere
    assert "7KQ2" not in proof.upper() and len(proof) == 64
