"""The small languages users type: sizes, fractions and batch-size lists."""

from __future__ import annotations

import pytest

from batchbench.units import format_mib, parse_batch_sizes, parse_fraction, parse_list, parse_size, powers_of_two

GiB, MiB = 1024**3, 1024**2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.5GiB", int(1.5 * GiB)),
        ("800MiB", 800 * MiB),
        ("800 MiB", 800 * MiB),
        ("8gib", 8 * GiB),
        ("2Gi", 2 * GiB),
        ("2GB", 2 * 1000**3),
        ("512KiB", 512 * 1024),
        ("1TiB", 1024**4),
        ("4096", 4096),
        ("4096B", 4096),
        (" 1.5GiB ", int(1.5 * GiB)),
        (".5GiB", GiB // 2),
        (1048576, MiB),
        (1.5e9, 1_500_000_000),
    ],
)
def test_parse_size_reads_binary_and_decimal_units(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("12XB", "unknown unit 'XB'"),
        ("1.5 GiBs", "unknown unit"),
        ("-1GiB", "expected a size"),
        ("lots", "expected a size"),
        ("", "expected a size"),
        ("1,5GiB", "expected a size"),
        ("0", "positive"),
        (0, "positive"),
        ("0.1B", "positive"),
        (True, "expected a size"),
        (None, "expected a size"),
        ([1], "expected a size"),
        (float("inf"), "expected a size"),
        (float("nan"), "expected a size"),
    ],
)
def test_parse_size_rejects_with_what_was_found_then_what_was_expected(text, reason):
    with pytest.raises(ValueError) as info:
        parse_size(text)
    message = str(info.value)
    assert message.startswith("got ")
    assert reason in message
    assert "expected" in message


def test_parse_size_messages_show_yaml_spellings():
    with pytest.raises(ValueError, match="got null,"):
        parse_size(None)
    with pytest.raises(ValueError, match="got true,"):
        parse_size(True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("10%", 0.10), ("10 %", 0.10), ("0%", 0.0), ("99.5%", 0.995), ("0.1", 0.1), (0.25, 0.25), (0, 0.0)],
)
def test_parse_fraction_reads_percentages_and_fractions(text, expected):
    assert parse_fraction(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["100%", "150%", 1, 1.5, -0.1, "-5%", "ten", "%", "", None, True, float("nan")])
def test_parse_fraction_rejects_values_outside_zero_to_one(text):
    with pytest.raises(ValueError, match=r"^got .*, expected a fraction"):
        parse_fraction(text)


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (1, 256, [1, 2, 4, 8, 16, 32, 64, 128, 256]),
        (8, 64, [8, 16, 32, 64]),
        (3, 17, [4, 8, 16]),
        (16, 16, [16]),
        (1, 1, [1]),
        (100, 300, [128, 256]),
    ],
)
def test_powers_of_two_lists_every_power_in_the_range(low, high, expected):
    assert powers_of_two(low, high) == expected


@pytest.mark.parametrize(
    ("low", "high", "reason"),
    [(64, 8, "min is larger than max"), (0, 8, "positive"), (-4, 8, "positive"), (5, 7, "no power of two")],
)
def test_powers_of_two_rejects_empty_or_inverted_ranges(low, high, reason):
    with pytest.raises(ValueError, match=reason):
        powers_of_two(low, high)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8,16,32", [8, 16, 32]),
        ("32, 8 ,16", [8, 16, 32]),
        ("16,16,8", [8, 16]),
        ("64", [64]),
        ("1-256", [1, 2, 4, 8, 16, 32, 64, 128, 256]),
        ("8 - 64", [8, 16, 32, 64]),
        ("3-17", [4, 8, 16]),
    ],
)
def test_parse_batch_sizes_reads_lists_and_ranges(text, expected):
    assert parse_batch_sizes(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "got nothing"),
        ("   ", "got nothing"),
        ("8,0,32", "'0' is not a positive integer"),
        ("8,-16", "'-16' is not a positive integer"),
        ("8,x", "'x' is not a positive integer"),
        ("8,,16", "'' is not a positive integer"),
        ("8.5", "'8.5' is not a positive integer"),
        ("8,16-32", "'16-32' is not a positive integer"),
        ("256-1", "min is larger than max"),
        ("0-8", "positive"),
        ("5-7", "no power of two"),
    ],
)
def test_parse_batch_sizes_rejects_bad_lists(text, reason):
    with pytest.raises(ValueError) as info:
        parse_batch_sizes(text)
    assert reason in str(info.value)
    assert str(info.value).startswith("got ")


def test_parse_list_and_format_mib():
    assert parse_list("fit, predict,,") == ["fit", "predict"]
    assert format_mib(None) == ""
    assert format_mib(3 * MiB) == "3 MiB"
