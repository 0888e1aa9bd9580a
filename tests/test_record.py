"""`Record` gives the spec's dataclasses the equality and repr the generated ones would have."""

from __future__ import annotations

import dataclasses
import math

import pytest

from edgemed.core.record import Record
from edgemed.core.spec import ModelSpec, Window


@dataclasses.dataclass(eq=False, repr=False)
class Shared(Record):
    name: str
    values: tuple = ()
    hidden: float = dataclasses.field(default=0.0, repr=False)
    note: str = dataclasses.field(default="", compare=False)
    child: object = None


@dataclasses.dataclass
class Generated:
    name: str
    values: tuple = ()
    hidden: float = dataclasses.field(default=0.0, repr=False)
    note: str = dataclasses.field(default="", compare=False)
    child: object = None


CASES = [(("a",), ("a",)), (("a", (1, 2)), ("a", (1, 3))), (("a", (), 1.0), ("a", (), 2.0)),
         (("a", (), 0.0, "x"), ("a", (), 0.0, "y")), (("a", (), math.nan), ("a", (), math.nan))]


@pytest.mark.parametrize(("left", "right"), CASES)
def test_equality_and_repr_match_the_generated_ones(left, right):
    for args in (left, right):
        assert repr(Shared(*args)) == repr(Generated(*args)).replace("Generated", "Shared")
    assert (Shared(*left) == Shared(*right)) == (Generated(*left) == Generated(*right))
    assert (Shared(*left) != Shared(*right)) == (Generated(*left) != Generated(*right))


def test_other_classes_are_never_equal_and_records_are_unhashable():
    assert Shared("a") != Generated("a") and Shared("a") != ("a",) and Shared("a") != "a"
    with pytest.raises(TypeError):
        hash(Shared("a"))
    with pytest.raises(TypeError):
        hash(Window("beat", before_s=0.2, after_s=0.3))


def test_a_record_that_contains_itself_repr_without_recursion():
    loop = Shared("a")
    loop.child = loop
    assert repr(loop) == "Shared(name='a', values=(), note='', child=...)"


def test_spec_round_trip_compares_by_value():
    spec = ModelSpec.from_json(ModelSpec.from_json(_spec_json()).to_json())
    assert spec == ModelSpec.from_json(_spec_json()) and spec is not ModelSpec.from_json(_spec_json())
    changed = ModelSpec.from_json(_spec_json())
    changed.preprocessing.window = Window("rhythm", seconds=4)
    assert spec != changed and "ModelSpec(architecture=" in repr(spec)


def _spec_json() -> str:
    from edgemed.train.models import create_model

    return create_model("gru", input_size=3, hidden_size=8).spec.to_json()
