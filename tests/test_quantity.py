"""Kubernetes quantity parsing."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webapp_platform.config.quantity import parse_cpu, parse_memory, parse_quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("100m", Decimal("0.1")),
        ("1", Decimal(1)),
        ("0.5", Decimal("0.5")),
        ("128Mi", Decimal(128 * 2**20)),
        ("1Gi", Decimal(2**30)),
        ("1G", Decimal(10**9)),
        ("1e3", Decimal(1000)),
        ("1.5k", Decimal(1500)),
    ],
)
def test_parses_valid_quantities(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["512mb", "", "Mi", "1.2.3", "12 Mi", "1MiB", "abc", "--1"])
def test_rejects_malformed_quantities(text: str) -> None:
    with pytest.raises(ValueError, match="is not a Kubernetes quantity"):
        parse_quantity(text)


def test_memory_rejects_milli_suffix() -> None:
    with pytest.raises(ValueError, match="milli-bytes; write Mi"):
        parse_memory("128m")


def test_cpu_rejects_zero() -> None:
    with pytest.raises(ValueError, match="more than zero"):
        parse_cpu("0")


@settings(deadline=None)  # no per-example time limit: a loaded 2-core runner is slow, not wrong
@given(st.integers(min_value=1, max_value=10**6), st.sampled_from(["Ki", "Mi", "Gi", "Ti"]))
def test_binary_suffixes_scale_by_powers_of_1024(number: int, suffix: str) -> None:
    power = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4}[suffix]
    assert parse_quantity(f"{number}{suffix}") == Decimal(number) * 1024**power


@settings(deadline=None)  # no per-example time limit: a loaded 2-core runner is slow, not wrong
@given(st.integers(min_value=1, max_value=10**6))
def test_millicores_equal_fractional_cores(millis: int) -> None:
    assert parse_cpu(f"{millis}m") == parse_cpu(str(Decimal(millis) / 1000))


@settings(deadline=None)  # no per-example time limit: a loaded 2-core runner is slow, not wrong
@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=0, max_value=10**9))
def test_order_is_preserved(a: int, b: int) -> None:
    assert (parse_quantity(f"{a}Mi") <= parse_quantity(f"{b}Mi")) == (a <= b)


# Kubernetes' quantity grammar (apimachinery's resource.Quantity), for the strings hypothesis makes up.
_KUBERNETES_QUANTITY = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|[KMGTPE]i|[numkMGTPE])?$")


_NUMBERS = st.from_regex(r"\A\+?([0-9]{1,4}(\.[0-9]{0,2})?|\.[0-9]{1,2})\Z")
# Kubernetes' suffixes and near misses people type (mb, MB, K, mi, Kib...).
_VALID_SUFFIXES = ["", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "e3", "E-2"]
_NEAR_MISSES = ["mb", "MB", "K", "mi", "Kib", "x", "b", "KB", "gi", "e", "i", " m", "m "]
_SUFFIXES = st.sampled_from([*_VALID_SUFFIXES, *_NEAR_MISSES])


@settings(deadline=None)  # no per-example time limit: a loaded 2-core runner is slow, not wrong
@given(_NUMBERS, _SUFFIXES)
def test_exactly_kubernetes_quantities_parse(number: str, suffix: str) -> None:
    text = number + suffix
    expected = bool(_KUBERNETES_QUANTITY.match(text.strip()))
    try:
        value = parse_quantity(text)
    except ValueError:
        assert not expected, f"{text!r} is a Kubernetes quantity but was refused"
        return
    assert expected, f"{text!r} is no Kubernetes quantity but parsed to {value}"
    assert value >= 0
