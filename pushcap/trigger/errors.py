"""The trigger boundary's one exception type, in a module of its own so that every part of
request validation (message.py, node_match.py) can raise it without importing the others."""

from __future__ import annotations


class TriggerError(ValueError):
    """A request that cannot be served; `field` names the culprit ("message" for the whole)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem
