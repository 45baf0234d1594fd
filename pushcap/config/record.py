"""`@record`: classes that behave as dataclasses, with no code generated when they are created.

Why not `@dataclass`: it compiles each class's __init__, __eq__, __repr__, __hash__ with exec()
when the class is created, ~0.5 ms a class on the bench VM, and importing dataclasses (with the
inspect, ast and dis it imports) costs ~6 ms more. A replay created 19 of them before reading a
packet: a tenth of a 300k-packet replay's CPU, start-up included (issue 15). A record's methods
are the same few functions for every class, driven by a table of its fields made when the class
is created (no exec), so creating one costs microseconds.

What a record keeps of a dataclass: fields from the class annotations, in order, defaults and
`field(default=, default_factory=, compare=, repr=)`; `__init__` taking them positionally or by
name (then `__post_init__`); `==` comparing the compared fields of two instances of the same
class; `repr`; `frozen=True` (assignment raises FrozenInstanceError, an AttributeError, and the
instance hashes by its compared fields; a mutable record is unhashable, as a dataclass with eq);
`order=True`. `dataclasses.fields`, `replace`, `asdict` and `is_dataclass` work on a record: its
`__dataclass_fields__` are made on first use, by making a dataclass with the same fields then
(so only code that asks pays for dataclasses). `replace` below does what dataclasses.replace
does without importing it.
"""

from __future__ import annotations

from operator import attrgetter

__all__ = ["FrozenInstanceError", "as_dict", "field", "record", "replace"]

TYPE_CHECKING = False  # typing's flag without importing typing: replay start-up (issue 15)
if TYPE_CHECKING:
    from typing import Any, TypeVar, dataclass_transform

    _T = TypeVar("_T")
else:
    def dataclass_transform(**_kwargs):
        """typing.dataclass_transform, which only type checkers read: the decorator unchanged."""
        return lambda decorated: decorated

_MISSING: Any = object()
_MUTABLE_DEFAULTS = (list, dict, set)


class FrozenInstanceError(AttributeError):
    """An assignment to a field of a frozen record (as dataclasses.FrozenInstanceError)."""


class Field:
    """What `field()` gives: a field's default (or default factory) and whether it counts in
    `==`, hashing and ordering, and in repr."""

    __slots__ = ("compare", "default", "default_factory", "repr")

    def __init__(self, default: Any, default_factory: Any, compare: bool, repr: bool) -> None:
        self.default, self.default_factory = default, default_factory
        self.compare, self.repr = compare, repr


def field(*, default: Any = _MISSING, default_factory: Any = _MISSING, compare: bool = True,
          repr: bool = True) -> Any:  # noqa: A002 - dataclasses.field's names
    """dataclasses.field's `default`, `default_factory`, `compare` and `repr`."""
    if default is not _MISSING and default_factory is not _MISSING:
        raise ValueError("cannot specify both default and default_factory")
    return Field(default, default_factory, compare, repr)


class _Spec:
    """A record class's fields, as its shared methods read them."""

    __slots__ = ("compared", "defaults", "factories", "frozen", "index", "key", "names",
                 "post_init", "shown", "types")

    def __init__(self, cls: type, frozen: bool) -> None:
        self.frozen = frozen
        names: list[str] = []
        self.types: dict[str, Any] = {}
        self.defaults: dict[str, Any] = {}
        self.factories: dict[str, Any] = {}
        compared: list[str] = []
        shown: list[str] = []
        for base in reversed(cls.__mro__[1:]):  # a base record's fields come first, as dataclasses'
            inherited: _Spec | None = base.__dict__.get("_record_spec")
            if inherited is not None:
                for name in inherited.names:
                    if name not in names:
                        names.append(name)
                self.types.update(inherited.types)
                self.defaults.update(inherited.defaults)
                self.factories.update(inherited.factories)
                compared += [n for n in inherited.compared if n not in compared]
                shown += [n for n in inherited.shown if n not in shown]
        for name, kind in cls.__dict__.get("__annotations__", {}).items():
            if isinstance(kind, str) and kind.startswith(("ClassVar", "typing.ClassVar")):
                continue
            value = cls.__dict__.get(name, _MISSING)
            spec = value if isinstance(value, Field) else Field(value, _MISSING, True, True)
            if isinstance(value, Field):  # as a dataclass: the default, if any, stays on the class
                if value.default is _MISSING:
                    delattr(cls, name)
                else:
                    setattr(cls, name, value.default)
            if isinstance(spec.default, _MUTABLE_DEFAULTS):
                raise ValueError(f"mutable default {type(spec.default)} for field {name} is "
                                 "not allowed: use default_factory")
            self.defaults.pop(name, None)
            self.factories.pop(name, None)
            if spec.default is not _MISSING:
                self.defaults[name] = spec.default
            elif spec.default_factory is not _MISSING:
                self.factories[name] = spec.default_factory
            if name not in names:
                names.append(name)
            self.types[name] = kind
            for chosen, listed in ((spec.compare, compared), (spec.repr, shown)):
                if chosen and name not in listed:
                    listed.append(name)
                elif not chosen and name in listed:
                    listed.remove(name)
        optional = [name in self.defaults or name in self.factories for name in names]
        if True in optional and False in optional[optional.index(True):]:
            late = names[optional.index(False, optional.index(True))]
            raise TypeError(f"non-default argument {late!r} follows default argument")
        self.names, self.compared, self.shown = tuple(names), tuple(compared), tuple(shown)
        self.index = frozenset(names)
        self.key = _key_of(self.compared)
        self.post_init = getattr(cls, "__post_init__", None)


def _key_of(names: tuple[str, ...]) -> Any:
    """A function giving an instance's compared fields as a tuple (what ==, hash and order use)."""
    if not names:
        return lambda _: ()
    if len(names) == 1:
        get = attrgetter(names[0])
        return lambda obj: (get(obj),)
    return attrgetter(*names)


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    spec: _Spec = self._record_spec
    if kwargs or len(args) != len(spec.names):
        args = _bound(spec, type(self).__qualname__, args, kwargs)
    # past a frozen record's __setattr__, as dataclasses' __init__; in the fields' order
    self.__dict__.update(zip(spec.names, args, strict=True))
    if spec.post_init is not None:
        spec.post_init(self)


def _bound(spec: _Spec, what: str, args: tuple, kwargs: dict[str, Any]) -> tuple:
    """Every field's value, in order, from __init__'s arguments and the defaults."""
    names = spec.names
    if len(args) > len(names):
        raise TypeError(f"{what}() takes {len(names)} arguments but {len(args)} were given")
    for key in kwargs:
        if key not in spec.index:
            raise TypeError(f"{what}() got an unexpected keyword argument {key!r}")
        if key in names[:len(args)]:
            raise TypeError(f"{what}() got multiple values for argument {key!r}")
    values = list(args)
    for name in names[len(args):]:
        value = kwargs.get(name, _MISSING)
        if value is _MISSING:
            value = spec.defaults.get(name, _MISSING)
            if value is _MISSING:
                factory = spec.factories.get(name)
                if factory is None:
                    raise TypeError(f"{what}() missing 1 required argument: {name!r}")
                value = factory()
        values.append(value)
    return tuple(values)


def _repr(self: Any) -> str:
    shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._record_spec.shown)
    return f"{type(self).__qualname__}({shown})"


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is not self.__class__:
        return NotImplemented
    key = self._record_spec.key
    return key(self) == key(other)


def _hash(self: Any) -> int:
    return hash(self._record_spec.key(self))


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _comparison(test: Any) -> Any:
    def compare(self: Any, other: Any) -> Any:
        if other.__class__ is not self.__class__:
            return NotImplemented
        key = self._record_spec.key
        return test(key(self), key(other))
    return compare


_ORDER = {"__lt__": _comparison(lambda a, b: a < b), "__le__": _comparison(lambda a, b: a <= b),
          "__gt__": _comparison(lambda a, b: a > b), "__ge__": _comparison(lambda a, b: a >= b)}


class _DataclassFields:
    """A record's `__dataclass_fields__`, made when first read (dataclasses.fields, replace,
    asdict, is_dataclass): the fields of a dataclass made then with the record's fields."""

    def __get__(self, obj: Any, owner: type) -> dict[str, Any]:
        import dataclasses

        spec: _Spec = owner._record_spec  # type: ignore[attr-defined]
        fields = []
        for name in spec.names:
            options: dict[str, Any] = {"compare": name in spec.compared,
                                       "repr": name in spec.shown}
            if name in spec.defaults:
                options["default"] = spec.defaults[name]
            elif name in spec.factories:
                options["default_factory"] = spec.factories[name]
            fields.append((name, spec.types[name], dataclasses.field(**options)))
        made = dataclasses.make_dataclass(owner.__name__, fields, frozen=spec.frozen)
        found = made.__dataclass_fields__  # type: ignore[attr-defined]
        type.__setattr__(owner, "__dataclass_fields__", found)
        return found


_DATACLASS_FIELDS = _DataclassFields()


@dataclass_transform(field_specifiers=(field,))
def record(cls: type[_T] | None = None, /, *, frozen: bool = False, order: bool = False) -> Any:
    """Make `cls` a record (`@record`, `@record(frozen=True, order=True)`); methods the class
    defines itself are kept, as @dataclass keeps them."""

    def make(cls: type[_T]) -> type[_T]:
        spec = _Spec(cls, frozen)
        own = cls.__dict__
        explicit_hash = own.get("__hash__", _MISSING)
        explicit_hash = not (explicit_hash is _MISSING or
                             (explicit_hash is None and "__eq__" in own))
        methods: dict[str, Any] = {"__init__": _init, "__repr__": _repr, "__eq__": _eq}
        if order:
            methods.update(_ORDER)
        for name, method in methods.items():
            if name not in own:
                setattr(cls, name, method)
        if not explicit_hash:
            cls.__hash__ = _hash if frozen else None  # type: ignore[assignment,method-assign]
        if frozen:
            if "__setattr__" in own or "__delattr__" in own:
                raise TypeError(f"cannot overwrite __setattr__ or __delattr__ in {cls.__name__}")
            cls.__setattr__ = _frozen_setattr  # type: ignore[method-assign,assignment]
            cls.__delattr__ = _frozen_delattr  # type: ignore[method-assign,assignment]
        if "__match_args__" not in own:
            cls.__match_args__ = spec.names  # type: ignore[attr-defined]
        type.__setattr__(cls, "_record_spec", spec)
        type.__setattr__(cls, "__dataclass_fields__", _DATACLASS_FIELDS)
        return cls

    return make if cls is None else make(cls)


def as_dict(obj: Any) -> dict[str, Any]:
    """A record's fields as a dict, in order (dataclasses.asdict of a record whose fields hold
    no records or containers, without importing dataclasses)."""
    return {name: getattr(obj, name) for name in obj._record_spec.names}


def replace(obj: _T, /, **changes: Any) -> _T:
    """A copy of record `obj` with `changes` (dataclasses.replace, without importing it)."""
    spec: _Spec = obj._record_spec  # type: ignore[attr-defined]
    for name in spec.names:
        if name not in changes:
            changes[name] = getattr(obj, name)
    return type(obj)(**changes)
