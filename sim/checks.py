"""Range checks shared by the sim stage's config dataclasses (SimConfig, EvalConfig, BenchConfig).

Each check raises :class:`ConfigError` naming the dataclass, the field, the value and what was
expected. A NaN fails every check: the comparisons are written so that NaN is never "in range".
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from core.errors import ChordError


class ConfigError(ChordError):
    """A sim, evaluation or bench setting out of range: a one-line error a user can fix.

    Not a ValueError on purpose: tyro turns a ValueError raised while it builds a config into a
    multi-line usage box naming its internals; a ChordError reaches ``chord`` as one line.
    """


def _is_real(value: Any) -> bool:
    # numbers.Real also admits NumPy scalars; a bool is not a quantity.
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_number(
    owner: str,  # the dataclass, e.g. "SimConfig"
    key: str,  # the field
    value: Any,
    *,
    above: float | None = None,  # value must be > this
    at_least: float | None = None,  # value must be >= this
    unit: str = "",  # for the message, e.g. "m"
) -> None:
    """Raise ConfigError unless ``value`` is a finite real number within the given bounds."""
    ok = _is_real(value) and math.isfinite(value)
    ok = ok and (above is None or value > above) and (at_least is None or value >= at_least)
    if not ok:
        bound = f" > {above:g}" if above is not None else f" >= {at_least:g}" if at_least is not None else ""
        raise ConfigError(
            f"{owner}.{key} is {value!r}, expected a finite number{bound}{f' {unit}' if unit else ''}"
        )


def check_integer(owner: str, key: str, value: Any, *, at_least: int | None = None) -> None:
    """Raise ConfigError unless ``value`` is an int (not a bool) >= ``at_least``."""
    if not (
        isinstance(value, numbers.Integral)
        and not isinstance(value, bool)
        and (at_least is None or value >= at_least)
    ):
        bound = f" >= {at_least}" if at_least is not None else ""
        raise ConfigError(f"{owner}.{key} is {value!r}, expected an integer{bound}")


def check_numbers(owner: str, key: str, values: Any, *, length: int | None = None, **bounds: Any) -> None:
    """Raise ConfigError unless ``values`` is a sequence (of ``length`` items, if given) of numbers
    each passing :func:`check_number` with ``bounds``."""
    if not isinstance(values, (tuple, list)) or (length is not None and len(values) != length):
        raise ConfigError(
            f"{owner}.{key} is {values!r}, expected {length if length is not None else 'a sequence of'} numbers"
        )
    for i, v in enumerate(values):
        check_number(owner, f"{key}[{i}]", v, **bounds)


def check_range(owner: str, key: str, values: Any, *, above: float | None = None, unit: str = "") -> None:
    """Raise ConfigError unless ``values`` is (low, high), finite, low <= high (and low > ``above``)."""
    check_numbers(owner, key, values, length=2, above=above, unit=unit)
    lo, hi = values
    if not lo <= hi:
        raise ConfigError(f"{owner}.{key} is {tuple(values)!r}, expected (low, high) with low <= high")
