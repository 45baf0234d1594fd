"""The flows tests share one collector fixture, so it lives here rather than in either file."""

from __future__ import annotations

import pytest
from flows_harness import Collector


@pytest.fixture
def collector():
    c = Collector()
    yield c
    c.close()
