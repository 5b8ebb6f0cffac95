"""Resource quantities, parsed and printed exactly as apimachinery's ``resource.Quantity``.

A quantity is ``<signedNumber><suffix>``: a number (``5``, ``1.5``, ``1.``, ``.5``) followed by
a binary suffix (Ki Mi Gi Ti Pi Ei), a decimal one (n u m "" k M G T P E) or an exponent
(``e3``, ``E-2``). The port follows ``pkg/api/resource/quantity.go`` step for step, quirks
included: ``ParseQuantity``'s fast path keeps small values exact; the slow path rounds up to a
whole nano-unit and caps the magnitude at 2^63-1. ``milli_value`` and ``value`` round up the way
``Quantity.MilliValue()`` and ``Value()`` do, so ``0.1m`` of CPU is one milli-CPU.

Two bounds that apimachinery does not have, so that every amount stays an int64 for the code
that turns it into cgroup settings, and a sum of them stays within ``Decimal``'s default
context: the fast path's result is capped at 2^63-1 like the slow path's (Go keeps
``1e1000000`` as it is, and its ``Value()`` then overflows), and a quantity is at most
``MAX_QUANTITY_CHARS`` characters long (no real one comes close; it keeps parsing cheap each
time a pod's resources are computed). The exponent, parsed as an int64, is truncated to
32 bits as Go's ``int32(parsed)`` does: ``1e4294967296`` is 1 there, and here.

Values are ``Decimal`` objects built from exact integers, never through a ``Decimal`` context,
so no precision is lost on the way. ``canonical_quantity`` gives ``Quantity.String()`` (the
form Kubernetes echoes back in messages, ``1500m`` -> ``1500m``, ``1.5`` -> ``1500m``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from math import isfinite

FORMAT_ERROR = (
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)
NUMERIC_ERROR = "unable to parse numeric value"
SUFFIX_ERROR = "unable to parse quantity's suffix"
MAX_QUANTITY_CHARS = 64
LENGTH_ERROR = f"quantities may not be more than {MAX_QUANTITY_CHARS} characters"

_MAX_INT64 = 2**63 - 1
_NANO = -9  # the finest scale the slow path keeps; anything finer rounds up
_MAX_INT64_FACTORS = 18  # decimal digits an int64 always holds (quantity.go maxInt64Factors)

_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12}
_DECIMAL_SUFFIXES |= {"P": 15, "E": 18}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_SUFFIX_CHARS = frozenset("eEinumkKMGTP")
_DIGITS = frozenset("0123456789")
_SIGNED_INT = re.compile(r"[+-]?[0-9]+")


class QuantityFormat(Enum):
    """resource.Format: how a quantity prints itself."""

    DECIMAL_EXPONENT = "DecimalExponent"  # 12e6
    BINARY_SI = "BinarySI"  # 12Mi
    DECIMAL_SI = "DecimalSI"  # 12M


@dataclass(frozen=True, slots=True)
class _Parsed:
    value: Decimal  # the exact amount
    format: QuantityFormat  # the suffix family it was written in
    cached: str | None  # the input itself, when ParseQuantity would keep it as String()


def parse_quantity(value: object) -> Decimal:
    """A written quantity (``"100m"``, ``1.5``, ``"64Mi"``, ``"1e3"``) -> its exact amount.

    Raises ValueError with apimachinery's message for anything ``ParseQuantity`` rejects.
    """
    return _parse(value).value


def canonical_quantity(value: object) -> str:
    """``Quantity.String()`` of a written quantity: the form Kubernetes prints it in."""
    parsed = _parse(value)
    if parsed.cached is not None:
        return parsed.cached
    return format_quantity(parsed.value, fmt=parsed.format)


def milli_value(q: Decimal) -> int:
    """``Quantity.MilliValue()``: the amount in thousandths, rounded up."""
    return _ceil_scaled(q, 1000)


def value(q: Decimal) -> int:
    """``Quantity.Value()``: the amount in whole units, rounded up."""
    return _ceil_scaled(q, 1)


def format_quantity(q: Decimal, *, fmt: QuantityFormat = QuantityFormat.DECIMAL_SI) -> str:
    """``Quantity.CanonicalizeBytes``: ``0.5`` -> ``500m``, ``1000`` -> ``1k``, and with
    ``fmt=BINARY_SI`` whole multiples of 1024 -> ``1Ki``/``1Mi``... (else decimal, as upstream)."""
    if q == 0:
        return "0"
    if fmt is QuantityFormat.BINARY_SI:
        if -1024 < q < 1024 or q != q.to_integral_value():
            fmt = QuantityFormat.DECIMAL_SI
        else:
            amount, power = int(q), 0
            while amount % 1024 == 0 and power < 6:
                amount //= 1024
                power += 1
            suffix = {0: ""} | {e // 10: s for s, e in _BINARY_SUFFIXES.items()}
            return f"{amount}{suffix[power]}"
    mantissa, exponent = _to_integer_pair(q)
    while mantissa % 10 == 0:
        mantissa //= 10
        exponent += 1
    # Lower the exponent to a multiple of three (Go's % keeps the sign: -4 % 3 == -1).
    shift = exponent % 3
    mantissa *= 10**shift
    exponent -= shift
    if fmt is QuantityFormat.DECIMAL_EXPONENT:
        return str(mantissa) if exponent == 0 else f"{mantissa}e{exponent}"
    names = {e: s for s, e in _DECIMAL_SUFFIXES.items()}
    if exponent in names:
        return f"{mantissa}{names[exponent]}"
    return f"{mantissa}e{exponent}"


# --- parsing ------------------------------------------------------------------------------------


def _as_text(raw: object) -> str:
    """The quantity as it reached the Go decoder: JSON numbers are printed, strings trimmed."""
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise ValueError(FORMAT_ERROR)
    if isinstance(raw, str):
        return raw.strip()
    if isinstance(raw, int):
        return str(raw)
    if not isfinite(raw):
        raise ValueError(FORMAT_ERROR)
    # encoding/json prints integral floats below 1e21 without a fraction or exponent.
    if raw == int(raw) and abs(raw) < 1e21:
        return str(int(raw))
    return repr(raw)


@dataclass(frozen=True, slots=True)
class _Split:
    positive: bool
    value: str  # sign + number as written, for the slow path
    num: str  # integer digits, leading zeros stripped ("0" when none)
    denom: str  # fraction digits
    suffix: str


def _split(text: str) -> _Split:
    """quantity.go parseQuantityString, cursor for cursor."""
    positive, pos, end = True, 0, len(text)
    if pos < end and text[0] in "+-":
        positive = text[0] == "+"
        pos += 1
    while pos < end and text[pos] == "0":
        pos += 1
    if pos >= end:
        return _Split(positive, "0", "0", "", "")
    start = pos
    while pos < end and text[pos] in _DIGITS:
        pos += 1
    num = text[start:pos] or "0"
    denom = ""
    if pos < end and text[pos] == ".":
        pos += 1
        start = pos
        while pos < end and text[pos] in _DIGITS:
            pos += 1
        denom = text[start:pos]
    number = text[:pos]
    suffix_start = pos
    while pos < end and text[pos] in _SUFFIX_CHARS:
        pos += 1
    if pos < end and text[pos] in "+-":
        pos += 1
    while pos < end and text[pos] in _DIGITS:
        pos += 1
    if pos < end:
        raise ValueError(FORMAT_ERROR)
    return _Split(positive, number, num, denom, text[suffix_start:])


def _interpret(suffix: str) -> tuple[int, int, QuantityFormat]:
    """suffix.go interpret: (base, exponent, format)."""
    if suffix in _DECIMAL_SUFFIXES:
        return 10, _DECIMAL_SUFFIXES[suffix], QuantityFormat.DECIMAL_SI
    if suffix in _BINARY_SUFFIXES:
        return 2, _BINARY_SUFFIXES[suffix], QuantityFormat.BINARY_SI
    if len(suffix) > 1 and suffix[0] in "eE" and _SIGNED_INT.fullmatch(suffix[1:]):
        exponent = int(suffix[1:])
        if -(2**63) <= exponent < 2**63:
            wrapped = (exponent + 2**31) % 2**32 - 2**31  # Go's int32(parsed)
            return 10, wrapped, QuantityFormat.DECIMAL_EXPONENT
    raise ValueError(SUFFIX_ERROR)


def _parse(raw: object) -> _Parsed:
    text = _as_text(raw)
    if not text:
        raise ValueError(FORMAT_ERROR)
    if len(text) > MAX_QUANTITY_CHARS:
        raise ValueError(LENGTH_ERROR)
    if text == "0":
        return _Parsed(Decimal(0), QuantityFormat.DECIMAL_SI, "0")
    split = _split(text)
    base, exponent, fmt = _interpret(split.suffix)
    sign = 1 if split.positive else -1

    # The fast path: an int64 mantissa at a scale no finer than nano, kept exactly.
    precision, scale, multiplier = -1, 0, 1
    if fmt is QuantityFormat.BINARY_SI:
        if exponent >= 0 and not split.denom:
            multiplier = 1 << exponent
            precision = 15 - len(split.num) - int(exponent * 3 / 10) - 1
    else:
        scale = exponent
        precision = _MAX_INT64_FACTORS - (len(split.num) + len(split.denom))
    if precision >= 0:
        scale -= len(split.denom)
        shifted = split.num + split.denom
        mantissa = int(shifted)
        if scale >= _NANO and mantissa <= _MAX_INT64 and mantissa * multiplier <= _MAX_INT64:
            amount = _decimal(sign * mantissa * multiplier, scale)
            if amount.copy_abs() > _MAX_INT64:  # copy_abs needs no context to overflow
                amount = Decimal(sign * _MAX_INT64)
            keep = (
                exponent % 10 == 0 and mantissa & 0x07 != 0
                if fmt is QuantityFormat.BINARY_SI
                else scale % 3 == 0 and not shifted.endswith("000") and shifted[0] != "0"
            )
            return _Parsed(amount, fmt, text if keep else None)

    # The slow path: exact arithmetic, rounded up to a nano-unit, capped at int64.
    digits = split.value.lstrip("+-").replace(".", "", 1)
    if not digits:
        raise ValueError(NUMERIC_ERROR)
    unscaled = int(digits)
    dec_exponent = -len(split.denom)
    if base == 10:
        dec_exponent += exponent
    else:
        unscaled <<= exponent
    magnitude = _round_up_to_nano_capped(unscaled, dec_exponent)
    if fmt is QuantityFormat.BINARY_SI and 0 < magnitude < 1:
        fmt = QuantityFormat.DECIMAL_SI
    return _Parsed(magnitude * sign, fmt, None)


def _round_up_to_nano_capped(unscaled: int, exponent: int) -> Decimal:
    """|unscaled * 10^exponent|, rounded away from zero to 1e-9, no larger than 2^63-1."""
    if unscaled == 0:
        return Decimal(0)
    if exponent + len(str(unscaled)) > 20:  # > 10^19 > 2^63-1
        return Decimal(_MAX_INT64)
    if exponent < _NANO:
        drop = _NANO - exponent
        # Far below a nano-unit, any non-zero amount is one nano-unit.
        unscaled = 1 if drop > len(str(unscaled)) + 1 else -(-unscaled // 10**drop)
        exponent = _NANO
    amount = _decimal(unscaled, exponent)
    return min(amount, Decimal(_MAX_INT64))


# --- exact arithmetic ---------------------------------------------------------------------------


def _decimal(unscaled: int, exponent: int) -> Decimal:
    """unscaled * 10^exponent, exactly (the tuple constructor ignores the context)."""
    sign = 1 if unscaled < 0 else 0
    return Decimal((sign, tuple(int(d) for d in str(abs(unscaled))), exponent))


def _to_integer_pair(q: Decimal) -> tuple[int, int]:
    sign, digits, exponent = q.as_tuple()
    assert isinstance(exponent, int)
    mantissa = int("".join(map(str, digits)) or "0")
    return (-mantissa if sign else mantissa), exponent


def _ceil_scaled(q: Decimal, factor: int) -> int:
    mantissa, exponent = _to_integer_pair(q)
    if exponent >= 0:
        return mantissa * factor * _pow10(exponent)
    return -(-(mantissa * factor) // _pow10(-exponent))


def _pow10(n: int) -> int:
    return int(10**n)
