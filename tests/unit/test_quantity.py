"""Quantities parse, round and print as apimachinery's resource.Quantity does."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minikubelet.api.quantity import (
    FORMAT_ERROR,
    SUFFIX_ERROR,
    QuantityFormat,
    canonical_quantity,
    format_quantity,
    milli_value,
    parse_quantity,
    value,
)


@pytest.mark.parametrize(
    ("written", "amount"),
    [
        ("100m", Decimal("0.1")),
        ("1", Decimal(1)),
        ("1.5", Decimal("1.5")),
        ("1.", Decimal(1)),
        (".5", Decimal("0.5")),
        ("+2", Decimal(2)),
        ("-100m", Decimal("-0.1")),
        ("0", Decimal(0)),
        ("1Ki", Decimal(1024)),
        ("64Mi", Decimal(64 * 2**20)),
        ("1.5Gi", Decimal(3 * 2**29)),
        ("1k", Decimal(1000)),
        ("2M", Decimal(2_000_000)),
        ("1e3", Decimal(1000)),
        ("1E3", Decimal(1000)),
        ("1e-3", Decimal("0.001")),
        ("5n", Decimal("5e-9")),
        ("250u", Decimal("0.00025")),
        (" 100m ", Decimal("0.1")),
        (2, Decimal(2)),
        (0.5, Decimal("0.5")),
        (1.0, Decimal(1)),
    ],
)
def test_parse_quantity_reads_every_number_and_suffix_form(written, amount):
    assert parse_quantity(written) == amount


@pytest.mark.parametrize("written", ["abc", "1.2.3", "0x10", "", "1 Mi", "1Mi5x"])
def test_malformed_quantity_is_rejected_with_the_regex_message(written):
    with pytest.raises(ValueError, match="quantities must match the regular expression") as info:
        parse_quantity(written)
    assert str(info.value) == FORMAT_ERROR


@pytest.mark.parametrize("written", ["1Kii", "1e", "1m5", "1KM", "--1"])
def test_unknown_suffix_is_rejected(written):
    with pytest.raises(ValueError) as info:
        parse_quantity(written)
    assert str(info.value) == SUFFIX_ERROR


@pytest.mark.parametrize("written", [True, None, [1], float("nan"), float("inf")])
def test_values_that_are_not_numbers_or_strings_are_rejected(written):
    with pytest.raises(ValueError):
        parse_quantity(written)


def test_amounts_finer_than_a_nano_unit_round_up():
    assert parse_quantity("0.1n") == Decimal("1e-9")
    assert parse_quantity("12e-10") == Decimal("2e-9")
    assert parse_quantity("1e-20") == Decimal("1e-9")


def test_amounts_beyond_int64_are_capped():
    assert parse_quantity("123456789012345678901234") == 2**63 - 1


@pytest.mark.parametrize(
    ("written", "millis", "units"),
    [("0.1m", 1, 1), ("100m", 100, 1), ("1.5", 1500, 2), ("1", 1000, 1), ("1Ki", 1024000, 1024)],
)
def test_milli_value_and_value_round_up(written, millis, units):
    amount = parse_quantity(written)
    assert milli_value(amount) == millis
    assert value(amount) == units


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        ("100m", "100m"),
        ("1.5", "1500m"),
        ("0.5", "500m"),
        ("1000", "1k"),
        ("1500", "1500"),
        ("1.0", "1"),
        ("1000m", "1"),
        ("1Ki", "1Ki"),
        ("1024Ki", "1Mi"),
        ("1.5Gi", "1536Mi"),
        ("1e3", "1e3"),
        ("+1", "+1"),
        ("0", "0"),
        (0.5, "500m"),
    ],
)
def test_canonical_quantity_matches_quantity_string(written, shown):
    assert canonical_quantity(written) == shown


def test_format_quantity_prefers_binary_suffixes_only_for_whole_multiples():
    assert format_quantity(Decimal(2**30), fmt=QuantityFormat.BINARY_SI) == "1Gi"
    assert format_quantity(Decimal(1000), fmt=QuantityFormat.BINARY_SI) == "1k"
    assert format_quantity(Decimal("0.25")) == "250m"


_SUFFIXES = ["", "m", "k", "M", "G", "Ki", "Mi", "Gi"]


@given(
    mantissa=st.integers(min_value=0, max_value=10**6),
    decimals=st.integers(min_value=0, max_value=3),
    suffix=st.sampled_from(_SUFFIXES),
)
def test_canonical_form_parses_back_to_the_same_amount(mantissa, decimals, suffix):
    written = f"{mantissa / 10**decimals:.{decimals}f}{suffix}"
    amount = parse_quantity(written)
    assert parse_quantity(canonical_quantity(written)) == amount
    assert milli_value(amount) >= amount * 1000 > milli_value(amount) - 1


@given(st.text(alphabet="0123456789.+-eEinumkKMGTPx ", max_size=12))
def test_parse_quantity_either_returns_an_amount_or_raises_value_error(written):
    try:
        amount = parse_quantity(written)
    except ValueError:
        return
    assert abs(amount) <= 2**63 - 1 or amount == amount.to_integral_value()
