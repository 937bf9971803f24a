"""Value classes: what ``dataclasses.dataclass`` makes of a class, at a fraction of the
cost of making it.

``dataclasses`` compiles each generated method on its own (``__init__``, ``__repr__``,
``__eq__``, and ``__hash__``, ``__setattr__``, ``__delattr__`` for a frozen class), and
imports ``inspect`` (with ``ast``, ``dis`` and ``tokenize``) to do it: on the CI machine
type its 24 classes on the way of a lock cost ~35 ms of every run that resolves, about
a tenth of it. ``record`` compiles one function per class, which makes them all, and
shares the frozen classes' ``__setattr__``/``__delattr__``.

What it supports is what safepip uses, with dataclasses' meaning: fields declared with
annotations, in order; a default, or ``field(default=, default_factory=, repr=, compare=,
hash=)``; ``frozen=True`` (assignment raises ``FrozenInstanceError``, an
``AttributeError``); ``__eq__`` between instances of the same class, comparing the fields
in order; ``__hash__`` for frozen classes (of the compared fields), none for the others;
``replace(obj, **changes)``. Not supported (and refused when seen): inheritance between
records, ``ClassVar``/``InitVar`` fields, methods the class defines itself among those
it makes. mypy knows it through PEP 681's ``dataclass_transform``.
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Any, TypeVar, dataclass_transform, overload

if TYPE_CHECKING:
    from collections.abc import Callable

_T = TypeVar("_T")
_MISSING: Any = type("_Missing", (), {"__repr__": lambda self: "MISSING"})()
_MADE = ("__init__", "__repr__", "__eq__", "__hash__", "__setattr__", "__delattr__")


class FrozenInstanceError(AttributeError):
    """Assignment to a field of a frozen record."""


class _Field:
    __slots__ = ("compare", "default", "factory", "hash", "name", "repr")

    def __init__(self, default: Any, factory: Any, repr_: bool, compare: bool,
                 hash_: bool | None) -> None:
        if default is not _MISSING and factory is not _MISSING:
            raise ValueError("cannot give both default and default_factory")
        self.name = ""
        self.default, self.factory = default, factory
        self.repr, self.compare = repr_, compare
        self.hash = compare if hash_ is None else hash_


def field(*, default: Any = _MISSING, default_factory: Callable[[], Any] | Any = _MISSING,
          repr: bool = True, compare: bool = True,
          hash: bool | None = None) -> Any:
    """A field's options (``dataclasses.field``'s, those safepip uses)."""
    return _Field(default, default_factory, repr, compare, hash)


def _frozen_setattr(self: object, name: str, value: object) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: object, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _getter(names: list[str]) -> Callable[[Any], tuple[Any, ...]]:
    """The tuple of these attributes of an object."""
    if not names:
        return lambda obj: ()
    get = operator.attrgetter(*names)
    if len(names) == 1:  # attrgetter of one name gives the value, not a tuple
        return lambda obj: (get(obj),)
    return get


def _methods(cls: type, shown: list[str], compared: list[str],
             hashed: list[str]) -> tuple[Callable[..., Any], ...]:
    """``__repr__``, ``__eq__`` and ``__hash__``: closures (only ``__init__`` is compiled,
    for its signature and its speed)."""
    key, hkey = _getter(compared), _getter(hashed)

    def __repr__(self: Any) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in shown)
        return f"{self.__class__.__qualname__}({inner})"

    def __eq__(self: Any, other: object) -> bool:
        if other.__class__ is self.__class__:
            return bool(key(self) == key(other))
        return NotImplemented

    def __hash__(self: Any) -> int:
        return hash(hkey(self))

    for fn in (__repr__, __eq__, __hash__):
        fn.__qualname__ = f"{cls.__qualname__}.{fn.__name__}"
    return __repr__, __eq__, __hash__


def _make(cls: type[_T], frozen: bool) -> type[_T]:
    body = cls.__dict__
    if any(base is not object for base in cls.__bases__) or any(
            name in body for name in _MADE):
        raise TypeError(f"{cls.__qualname__}: record makes no subclass of another class "
                        "and keeps no method of its own among those it makes")
    fields: list[_Field] = []
    for name, annotation in body.get("__annotations__", {}).items():
        if isinstance(annotation, str) and annotation.startswith(
                ("ClassVar", "typing.ClassVar", "InitVar", "dataclasses.InitVar")):
            raise TypeError(f"{cls.__qualname__}.{name}: ClassVar and InitVar are not "
                            "supported")
        value = body.get(name, _MISSING)
        f = value if isinstance(value, _Field) else _Field(value, _MISSING, True, True, None)
        f.name = name
        fields.append(f)
    env: dict[str, Any] = {"_MISSING": _MISSING, "_setattr": object.__setattr__}
    params, lines = [], []
    seen_default = False
    for f in fields:
        n = f.name
        if f.default is not _MISSING:
            env[f"_d_{n}"] = f.default
            params.append(f"{n}=_d_{n}")
            value = n
            seen_default = True
        elif f.factory is not _MISSING:
            env[f"_f_{n}"] = f.factory
            params.append(f"{n}=_MISSING")
            value = f"_f_{n}() if {n} is _MISSING else {n}"
            seen_default = True
        elif seen_default:
            raise TypeError(f"{cls.__qualname__}: field {n!r} without a default follows "
                            "one with a default")
        else:
            params.append(n)
            value = n
        lines.append(f"  _setattr(self, {n!r}, {value})" if frozen
                     else f"  self.{n} = {value}")
    src = "\n".join([f"def __init__(self, {', '.join(params)}):" if params else
                     "def __init__(self):", *(lines or ["  pass"])])
    ns: dict[str, Any] = {}
    exec(compile(src, f"<record {cls.__module__}.{cls.__qualname__}>", "exec"), env, ns)
    init = ns["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    repr_, eq, hash_ = _methods(cls, [f.name for f in fields if f.repr],
                                [f.name for f in fields if f.compare],
                                [f.name for f in fields if f.hash])
    for f in fields:
        # a field's class attribute is its default, as in dataclasses (or none)
        if f.default is not _MISSING:
            type.__setattr__(cls, f.name, f.default)
        elif f.name in body:
            type.__delattr__(cls, f.name)
    type.__setattr__(cls, "__init__", init)
    type.__setattr__(cls, "__repr__", repr_)
    type.__setattr__(cls, "__eq__", eq)
    if frozen:
        type.__setattr__(cls, "__hash__", hash_)
        type.__setattr__(cls, "__setattr__", _frozen_setattr)
        type.__setattr__(cls, "__delattr__", _frozen_delattr)
    else:
        type.__setattr__(cls, "__hash__", None)  # mutable and compared by value
    type.__setattr__(cls, "__record_fields__", tuple(f.name for f in fields))
    return cls


@overload
def record(cls: type[_T], /) -> type[_T]: ...
@overload
def record(*, frozen: bool = False) -> Callable[[type[_T]], type[_T]]: ...


@dataclass_transform(field_specifiers=(field,))
def record(cls: type[_T] | None = None, /, *,
           frozen: bool = False) -> type[_T] | Callable[[type[_T]], type[_T]]:
    """``@record`` or ``@record(frozen=True)``: the class's ``__init__``, ``__repr__``,
    ``__eq__`` (and ``__hash__`` when frozen), as ``@dataclass`` makes them."""
    if cls is None:
        return lambda c: _make(c, frozen)
    return _make(cls, frozen)


def replace(obj: _T, /, **changes: Any) -> _T:
    """A copy of the record ``obj`` with ``changes`` (``dataclasses.replace``)."""
    names = type(obj).__record_fields__  # type: ignore[attr-defined]
    unknown = set(changes) - set(names)
    if unknown:
        raise TypeError(f"{type(obj).__qualname__} has no field {sorted(unknown)[0]!r}")
    return type(obj)(**{n: changes[n] if n in changes else getattr(obj, n) for n in names})
