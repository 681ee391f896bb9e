"""A registry: named entries of one kind in registration order, with a ``lookup`` that names the known
ones on a typo. The design, task and baseline registries are instances (each module's ``get_*``
is its ``lookup``)."""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(dict, Generic[T]):
    """``{name: entry}`` with :meth:`register` (refuses a name twice unless ``replace``) and :meth:`lookup`
    (``error`` naming the registered names for an unknown one)."""

    def __init__(self, kind: str, error: type[Exception]):
        super().__init__()
        self.kind, self.error = kind, error

    def register(self, name: str, entry: T, replace: bool = False) -> T:
        """Add ``entry`` under ``name``; returns it."""
        if name in self and not replace:
            raise self.error(f"{self.kind} {name!r} is already registered")
        self[name] = entry
        return entry

    def lookup(self, name: str) -> T:
        """The entry ``name``; ``error`` listing the registered names otherwise."""
        if name not in self:
            raise self.error(f"unknown {self.kind} {name!r}; known: {', '.join(self)}")
        return self[name]
