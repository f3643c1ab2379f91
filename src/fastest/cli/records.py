"""`Record`: a mutable record with named fields and defaults, for the CLI's reports and state.

What `@dataclass(slots=True)` would make, without importing `dataclasses`: that module imports
`inspect` (and `ast`, `dis`, `tokenize`…), ~10 ms of start-up on every command, a tenth of what a
whole `fastest status` may take (bench/cli.py). Immutable records are named tuples instead.

A subclass names its fields in `__slots__` (in order) and their defaults in `DEFAULTS`; a callable
default is called for each instance (as `field(default_factory=…)`), and a field without one is
required:

    class Report(Record):
        __slots__ = ("path", "count", "names")
        DEFAULTS = {"count": 0, "names": list}
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, ClassVar


class Record:
    __slots__ = ()
    DEFAULTS: ClassVar[dict[str, Any]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        names = self.__slots__
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__}() takes at most {len(names)} positional arguments")
        values = dict(zip(names, args))
        for name, value in kwargs.items():
            if name not in names or name in values:
                raise TypeError(f"{type(self).__name__}() got an unexpected or repeated argument {name!r}")
            values[name] = value
        for name in names:
            if name in values:
                value = values[name]
            elif name in self.DEFAULTS:
                default = self.DEFAULTS[name]
                value = default() if callable(default) else default
            else:
                raise TypeError(f"{type(self).__name__}() is missing the argument {name!r}")
            setattr(self, name, value)

    def to_json(self) -> dict[str, Any]:
        """The fields by name (values as they are: a shallow `dataclasses.asdict`)."""
        return {name: getattr(self, name) for name in self.__slots__}

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self.to_json() == other.to_json()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]  (mutable)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"
