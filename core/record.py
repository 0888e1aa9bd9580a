"""Equality and repr for edgemed's dataclasses, written once.

Python 3.11 compiles every generated dataclass method with `exec` when its module loads (0.1-0.3 ms a method
here), and the spec's classes load with every model. Declared `@dataclass(eq=False, repr=False)` on top of
`Record`, a class gets its `__init__` generated and these two shared: the same results as the generated ones
(fields compared as a tuple, only between instances of the same class; `Name(field=value, ...)` with the fields
marked for repr), and, like a mutable dataclass with equality, no hash.
"""

from __future__ import annotations

import reprlib
from dataclasses import fields


class Record:
    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        names = [f.name for f in fields(self) if f.compare]  # type: ignore[arg-type]
        return tuple(getattr(self, n) for n in names) == tuple(getattr(other, n) for n in names)

    @reprlib.recursive_repr()
    def __repr__(self) -> str:
        shown = (f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.repr)  # type: ignore[arg-type]
        return f"{self.__class__.__qualname__}({', '.join(shown)})"
