"""What the platform reads from outside (portal.inputs): storable text, and numbers as a
person types them. The API, the portal and the CLI all answer through these rules."""

from __future__ import annotations

import pytest

from portal.inputs import AmountError, minor_units, unstorable, whole_number

HUGE = "9" * 5000  # past Python's int() digit limit, and past any column


@pytest.mark.parametrize(("text", "says"), [
    ("a\x00b", "NUL"), ("\x00", "NUL"), ("\ud800", "U+D800"), ("x\udfff", "U+DFFF"), ("\udcff", "U+DCFF"),
])
def test_nul_and_lone_surrogates_are_unstorable(text, says):
    assert says in unstorable(text)


@pytest.mark.parametrize("text", ["", "Ana", "\U0001f600", "é\u200b\x1b\n\t", "\ud83d\ude00".encode(
    "utf-16", "surrogatepass").decode("utf-16")])
def test_any_valid_unicode_without_nul_is_storable(text):
    assert unstorable(text) is None


@pytest.mark.parametrize(("text", "number"), [("5", 5), (" 5 ", 5), ("\t12", 12), ("007", 7), ("0", 0),
                                              ("9" * 15, 10**15 - 1)])
def test_whole_numbers_are_ascii_digits(text, number):
    assert whole_number(text) == number


@pytest.mark.parametrize("text", [
    "", " ", "1e100", "1E3", "NaN", "nan", "Infinity", "-Infinity", "inf", "-0", "-5", "+5", "1_000", "1,000", "1.0",
    "5.", "٣", "５", "0x10", "0b1", "0o7", "½", "²", "5 5", "\n5", "5\x00", "9" * 16, HUGE,
])
def test_anything_else_is_not_a_whole_number(text):
    assert whole_number(text) is None


@pytest.mark.parametrize(("text", "decimals", "minor"), [
    ("2.50", 2, 250), ("2,50", 2, 250), ("2.5", 2, 250), ("2", 2, 200), (" 2.50 ", 2, 250), ("5", 0, 5),
    ("1.234", 3, 1234), ("1.2", 3, 1200), ("0.01", 2, 1), ("0", 2, 0), ("0.00", 2, 0),
])
def test_amounts_become_minor_units_without_floats(text, decimals, minor):
    assert minor_units(text, decimals) == minor


@pytest.mark.parametrize("text", [
    "1e100", "1E2", "NaN", "Infinity", "-0", "-1", "+1", "1_000", "1 000", "٣", "0x10", "1.2.3", ".5", "5.", "", "€5",
    "9" * 16, HUGE, "1." + "0" * 16 + "1",
])
def test_amounts_that_are_not_numbers_are_refused(text):
    with pytest.raises(AmountError) as caught:
        minor_units(text, 2)
    assert caught.value.reason == "not_a_number"


@pytest.mark.parametrize(("text", "decimals"), [("2.505", 2), ("5.5", 0), ("1.2345", 3), ("0.001", 2), ("2.500", 2),
                                               ("1,000", 2), ("5.0", 0)])
def test_more_decimals_than_the_currency_has_are_refused(text, decimals):
    with pytest.raises(AmountError) as caught:
        minor_units(text, decimals)
    assert caught.value.reason == "too_many_decimals"
