"""Bad input a user can fix: the exception types, and the ranges a numeric parameter must lie in.

The ranges sit here, at the bottom of the package, so that every config dataclass can declare
them on its fields (`dropout: Probability = 0.1`) without importing pipeline/config.py, which
imports those dataclasses.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass
from typing import Annotated


class InputError(ValueError):
    """Bad input: the message names the file, the record and the fix.

    Stages catch it at the command-line edge and print it without a traceback.
    """


class ConfigError(InputError):
    """A parameter is unknown, ill-typed or out of range; the message names its dotted key."""


@dataclass(frozen=True)
class Range:
    """The values a numeric config field may take, declared on its type (`Annotated[int, Range(3)]`).

    NaN and infinities are never in a range: no parameter of the pipeline means anything at them.
    """

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False  # low itself is refused
    high_open: bool = False  # high itself is refused
    reason: str = ""  # why, where the bound is not obvious: said after it

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return math.isfinite(value) and above and below

    def __str__(self) -> str:
        if self.high == math.inf:
            bound = f"greater than {self.low}" if self.low_open else f"at least {self.low}"
        else:
            bound = f"in {'(' if self.low_open else '['}{self.low}, {self.high}{')' if self.high_open else ']'}"
        return f"{bound} ({self.reason})" if self.reason else bound


# The ranges most fields share, named for what the field counts or measures.
Count = Annotated[int, Range(1)]  # sizes, layers, heads, epochs, batch and block sizes, positions
Workers = Annotated[int, Range(0)]  # threads or worker processes; each field says what 0 means
Positive = Annotated[float, Range(0, low_open=True)]  # learning rates, temperatures, scales
Probability = Annotated[float, Range(0, 1, high_open=True)]  # dropout: 1 would drop everything
Seed = Annotated[int, Range(0, 2**32 - 1)]  # NumPy's seeds are unsigned 32-bit


def check_ranges(config: object) -> None:
    """Raise ValueError, starting with the field's name, for the first field of dataclass `config`
    (or entry of a tuple field) outside the Range its type declares. Called by every config's __post_init__."""
    for name, allowed in declared_ranges(type(config)).items():
        value = getattr(config, name)
        if isinstance(value, tuple):
            if any(entry not in allowed for entry in value):
                raise ValueError(f"{name} = {list(value)}: each entry must be {allowed}")
        elif value is not None and value not in allowed:
            raise ValueError(f"{name} = {value!r}: must be {allowed}")


def declared_ranges(cls: type) -> dict[str, Range]:
    """Field name -> the Range on its type, looked through `X | None` and `tuple[X, ...]`."""
    ranges = {}
    for name, hint in typing.get_type_hints(cls, include_extras=True).items():
        for kind in (hint, *typing.get_args(hint)):
            for extra in getattr(kind, "__metadata__", ()):
                if isinstance(extra, Range):
                    ranges[name] = extra
    return ranges
