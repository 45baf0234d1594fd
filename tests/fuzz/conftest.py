"""Property-based fuzzing (hypothesis): the profile every fuzz test runs under.

Two profiles, chosen by PUSHCAP_FUZZ (fuzz_helpers.py has them):
- `ci` (the default, `make test`): derandomized, no example database, so every run of a commit
  tries the same examples and CI is deterministic; each test runs a bounded number of examples
  (`examples(n)`), the whole folder within about a minute of CPU.
- `soak` (`make soak`): random examples, SOAK_FACTOR times as many, failures kept in
  `.hypothesis/` so that the next run tries them first.

Every test module here is marked `fuzz` (`make soak` selects them with -m).
"""

from __future__ import annotations

from fuzz_helpers import PROFILE, register_profiles

register_profiles()


def pytest_report_header(config):
    return f"pushcap fuzz profile: {PROFILE} (PUSHCAP_FUZZ)"
