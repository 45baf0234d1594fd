"""`@record` behaves as `@dataclass` where pushcap relies on it: the same class made both ways
must agree on construction, equality, hashing, repr, order, immutability, and on what
dataclasses' own functions (fields, replace, asdict, is_dataclass) say about it."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest

from pushcap.config.model import PushMode, SplitKind, SplitRule, TargetConfig
from pushcap.config.record import FrozenInstanceError, as_dict, field, record, replace


def twins(frozen: bool = False, order: bool = False):
    """The same class body as a record and as a dataclass."""

    def body():
        class Kept:
            age: int
            name: str = "x"
            notes: tuple = dataclasses.field(default=(), compare=False) if made is dataclasses \
                else field(default=(), compare=False)
            secret: str | None = dataclasses.field(default=None, repr=False) \
                if made is dataclasses else field(default=None, repr=False)
            seen: list = dataclasses.field(default_factory=list, compare=False) \
                if made is dataclasses else field(default_factory=list, compare=False)

        return Kept

    made = dataclasses
    as_dataclass = dataclasses.dataclass(frozen=frozen, order=order)(body())
    made = record
    as_record = record(frozen=frozen, order=order)(body())
    return as_record, as_dataclass


@pytest.mark.parametrize("frozen", [False, True])
def test_a_record_agrees_with_the_dataclass_of_the_same_body(frozen):
    rec, dc = twins(frozen=frozen, order=True)
    for args, kwargs in [((1,), {}), ((1, "a"), {"notes": (1,)}), ((), {"age": 2, "secret": "s"})]:
        r, d = rec(*args, **kwargs), dc(*args, **kwargs)
        assert repr(r) == repr(d)
        assert dataclasses.asdict(r) == dataclasses.asdict(d) == as_dict(r)
        assert [f.name for f in dataclasses.fields(r)] == [f.name for f in dataclasses.fields(d)]
        assert dataclasses.is_dataclass(r)
    assert (rec(1, notes=(1,)) == rec(1, notes=(2,))) is (dc(1, notes=(1,)) == dc(1, notes=(2,)))
    assert (rec(1) == rec(2)) is False and rec(1) != dc(1)
    assert sorted([rec(3), rec(1), rec(2)]) == [rec(1), rec(2), rec(3)]
    assert rec(1).seen is not rec(1).seen  # a fresh default per instance
    for bad_args, bad_kwargs in [((), {}), ((1,), {"nope": 1}), ((1,), {"age": 1}),
                                 ((1, "a", (), None, [], 9), {})]:
        with pytest.raises(TypeError):
            dc(*bad_args, **bad_kwargs)
        with pytest.raises(TypeError):
            rec(*bad_args, **bad_kwargs)


def test_frozen_records_refuse_assignment_and_hash_by_their_compared_fields():
    rec, _ = twins(frozen=True)
    kept = rec(1, notes=("a",))
    with pytest.raises(FrozenInstanceError):
        kept.age = 2
    with pytest.raises(AttributeError):
        del kept.name
    assert hash(kept) == hash(rec(1, notes=("b",)))  # notes: compare=False
    assert {kept, rec(1)} == {kept}
    mutable, _ = twins(frozen=False)
    with pytest.raises(TypeError):
        hash(mutable(1))  # as a dataclass with eq and without frozen


def test_replace_copy_and_pickle_keep_the_record():
    split = SplitRule(SplitKind.TIME, 60_000_000_000)
    target = TargetConfig(1, "t", PushMode.FILE, "/out/t", split, naming=None)  # type: ignore
    assert replace(target, desc="u") == dataclasses.replace(target, desc="u") != target
    assert replace(target, desc="u").split is split
    assert pickle.loads(pickle.dumps(target)) == target == copy.deepcopy(target)
    assert target.notices == () and target.file_suffix == ".pcap"


def test_a_record_made_wrong_is_refused_as_a_dataclass_is():
    with pytest.raises(TypeError):
        @record
        class _Order:
            a: int = 1
            b: int
    with pytest.raises(ValueError):
        @record
        class _Shared:
            a: list = []  # noqa: RUF012 - the mistake under test
