"""safepip._record: value classes that behave as ``dataclasses`` makes them (checked
against dataclasses itself), and refuse what they do not support."""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

import pytest

from safepip._record import FrozenInstanceError, field, record, replace


def _pair(frozen: bool) -> tuple[Any, Any]:
    """The same class, made by dataclasses and by record."""

    def body() -> dict[str, Any]:
        return {
            "__annotations__": {"name": "str", "version": "int", "tags": "tuple[str, ...]",
                                "note": "str", "cache": "dict[str, int]"},
            "__module__": __name__,
            "version": 1,
            "tags": (field_of)(default_factory=tuple),
            "note": (field_of)(default="", repr=False),
            "cache": (field_of)(default_factory=dict, compare=False),
        }

    field_of: Any = dataclasses.field
    dc = dataclasses.dataclass(frozen=frozen)(type("Thing", (), body()))
    field_of = field
    rc = record(frozen=frozen)(type("Thing", (), body()))
    return dc, rc


@pytest.mark.parametrize("frozen", [False, True])
def test_a_record_behaves_as_the_same_dataclass(frozen: bool) -> None:
    dc, rc = _pair(frozen)
    cases = [(("a",), {}), (("a", 2), {"tags": ("x",)}), (("b",), {"note": "n", "cache": {"k": 1}})]
    for args, kw in cases:
        d, r = dc(*args, **kw), rc(*args, **kw)
        assert repr(d) == repr(r)
        assert [getattr(d, n) for n in ("name", "version", "tags", "note", "cache")] == \
               [getattr(r, n) for n in ("name", "version", "tags", "note", "cache")]
        for args2, kw2 in cases:
            assert (dc(*args, **kw) == dc(*args2, **kw2)) == (r == rc(*args2, **kw2))
        if frozen:
            r2 = rc(*args, **kw)
            assert hash(r) == hash(r2) and r == r2
            assert hash(r) == hash(d)  # the same fields hashed, in the same order
    # compare=False: not compared; a factory makes a new value for each instance
    assert rc("a", cache={"k": 1}) == rc("a", cache={"k": 2})
    assert rc("a").cache is not rc("a").cache and rc("a").tags == ()
    # another class with the same fields is not equal (NotImplemented, then identity)
    _, other = _pair(frozen)
    assert rc("a") != other("a")
    assert rc("a") != ("a", 1)
    with pytest.raises(TypeError):
        rc()  # a field without a default is required, as in dataclasses
    with pytest.raises(TypeError):
        rc("a", bogus=1)


def test_frozen_records_refuse_assignment_and_mutable_ones_are_not_hashable() -> None:
    _, frozen = _pair(True)
    _, mutable = _pair(False)
    f = frozen("a")
    with pytest.raises(FrozenInstanceError, match="cannot assign to field 'name'"):
        f.name = "b"
    with pytest.raises(AttributeError):
        del f.version
    m = mutable("a")
    m.name = "b"
    assert m.name == "b"
    with pytest.raises(TypeError):
        hash(m)


def test_replace_copies_with_changes() -> None:
    _, rc = _pair(True)
    r = rc("a", 2, tags=("x",), note="kept")
    s = replace(r, version=3)
    assert (s.name, s.version, s.tags, s.note) == ("a", 3, ("x",), "kept") and r.version == 2
    with pytest.raises(TypeError, match="no field 'bogus'"):
        replace(r, bogus=1)


@record(frozen=True)
class Module:  # at module level, so that pickle finds it
    name: str
    size: int = 0
    parts: tuple[str, ...] = field(default=())


def test_a_record_at_module_level_pickles_and_has_defaults_as_class_attributes() -> None:
    m = Module("x", 2, ("a",))
    assert pickle.loads(pickle.dumps(m)) == m
    assert Module.size == 0 and Module.parts == ()
    assert repr(Module("y")) == "Module(name='y', size=0, parts=())"


def test_what_record_does_not_support_is_refused() -> None:
    class Base:
        pass

    with pytest.raises(TypeError, match="no subclass"):
        record(type("Sub", (Base,), {"__annotations__": {"a": "int"}, "__module__": __name__}))
    with pytest.raises(TypeError, match="no method of its own"):
        record(type("Own", (), {"__annotations__": {"a": "int"}, "__module__": __name__,
                                "__eq__": lambda self, other: True}))
    with pytest.raises(TypeError, match="without a default follows"):
        record(type("Order", (), {"__annotations__": {"a": "int", "b": "int"},
                                  "__module__": __name__, "a": 1}))
    with pytest.raises(TypeError, match="ClassVar"):
        record(type("CV", (), {"__annotations__": {"a": "ClassVar[int]"},
                               "__module__": __name__}))
    with pytest.raises(ValueError, match="both default and default_factory"):
        field(default=1, default_factory=int)
