"""What the fuzz tests share: the hypothesis profiles, example counts, a time bound per case.

No test has a hypothesis deadline: a slow CI machine must not fail a test for being slow. What
bounds a case is the code under test (the Lua budget, a subprocess timeout) or `within`, which
turns a case that runs for far longer than it should (a hang) into a failure naming it.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hypothesis import HealthCheck, currently_in_test_context, event, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

REPO = Path(__file__).resolve().parents[2]
PROFILE = os.environ.get("PUSHCAP_FUZZ", "ci")
SOAK_FACTOR = int(os.environ.get("PUSHCAP_FUZZ_FACTOR", "25"))
CASE_LIMIT_S = 20  # far beyond any case's few seconds: only a hang reaches it

_COMMON = dict(
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
)


def register_profiles() -> None:
    """`ci`: the same examples every run (derandomize), nothing stored between runs;
    `soak`: new random examples each run, failures kept in .hypothesis/ and tried first."""
    settings.register_profile("ci", derandomize=True, database=None, **_COMMON)
    settings.register_profile(
        "soak", derandomize=False,
        database=DirectoryBasedExampleDatabase(str(REPO / ".hypothesis" / "examples")), **_COMMON)
    if PROFILE not in ("ci", "soak"):
        raise ValueError(f"PUSHCAP_FUZZ={PROFILE!r}: use ci (the default) or soak")
    settings.load_profile(PROFILE)


def examples(ci: int) -> settings:
    """A test's example count: `ci` under `make test`, SOAK_FACTOR times that under `make soak`.
    (The other settings come from the loaded profile.)"""
    return settings(max_examples=ci * SOAK_FACTOR if PROFILE == "soak" else ci)


class CaseTooLong(AssertionError):
    """A case ran past CASE_LIMIT_S: a hang, or something close to one."""


@contextmanager
def within(seconds: float = CASE_LIMIT_S, what: str = "case") -> Iterator[None]:
    """Fail the case if its body runs longer than `seconds`: a timer thread sends SIGUSR1 to
    this thread, whose handler raises CaseTooLong (Python code is interrupted; C code that never
    returns is left to pytest-timeout, whose SIGALRM this leaves alone)."""

    def expired(signum, frame):
        raise CaseTooLong(f"{what} still running after {seconds} s")

    target = threading.get_ident()
    previous = signal.signal(signal.SIGUSR1, expired)
    timer = threading.Timer(seconds, signal.pthread_kill, (target, signal.SIGUSR1))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        timer.join()
        signal.signal(signal.SIGUSR1, previous)


def outcome(label: str) -> None:
    """Count an outcome for --hypothesis-show-statistics (a no-op outside hypothesis)."""
    if currently_in_test_context():
        event(label)


def one_line(message: str) -> bool:
    return "\n" not in message and "\r" not in message


def mutate(draw, buf: bytearray, tokens: list[bytes], max_size: int,
           ops: tuple[str, ...] = ("flip", "delete", "repeat", "token", "cut")) -> bytes:
    """1-5 mutations of a valid file, drawn with hypothesis's `draw`: a bit flipped, up to
    `max_size` bytes removed or repeated, one of `tokens` inserted, the file cut short, or
    (with "swap" in `ops`) two bytes swapped."""
    for _ in range(draw(st.integers(1, 5))):
        op = draw(st.sampled_from(list(ops)))
        at = draw(st.integers(0, max(0, len(buf) - 1)))
        size = draw(st.integers(1, max_size))
        if op == "flip" and buf:
            buf[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "delete":
            del buf[at:at + size]
        elif op == "repeat":
            buf[at:at] = buf[at:at + size] * draw(st.integers(1, 3))
        elif op == "token":
            buf[at:at] = draw(st.sampled_from(tokens))
        elif op == "cut":
            del buf[at:]
        elif op == "swap" and buf:
            other = draw(st.integers(0, len(buf) - 1))
            buf[at], buf[other] = buf[other], buf[at]
    return bytes(buf)
