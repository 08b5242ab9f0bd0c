"""The shared checks of plain argument values: JSON's look-alikes are refused by name."""

import pytest

from chaosmesh_py import checks
from chaosmesh_py.errors import InvalidInput


@pytest.mark.parametrize("value", [True, 1.0, "3", None, 0, 11])
def test_whole_refuses_what_is_not_a_whole_number_in_range(value: object) -> None:
    with pytest.raises(InvalidInput, match=r"^count: must be a whole number from 1 to 10, got "):
        checks.whole("count", value, 1, 10)


def test_whole_without_an_upper_bound_says_so_and_keeps_the_fix() -> None:
    assert checks.whole("index", 7, 0) == 7
    with pytest.raises(InvalidInput, match="from 0, got -1") as error:
        checks.whole("index", -1, 0, fix="0 is the first route")
    assert error.value.fix == "0 is the first route"


@pytest.mark.parametrize("value", ["", "   ", 3, None])
def test_text_refuses_empty_and_non_strings(value: object) -> None:
    with pytest.raises(InvalidInput, match="name: must be a non-empty string"):
        checks.text("name", value)


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_flag_takes_json_booleans_only(value: object) -> None:
    with pytest.raises(InvalidInput, match="must be true or false"):
        checks.flag("strict", value)
    assert checks.flag("strict", False) is False


@pytest.mark.parametrize("value", [0, -1, True, "2"])
def test_seconds_must_be_above_zero(value: object) -> None:
    with pytest.raises(InvalidInput, match="must be a number of seconds above 0"):
        checks.seconds("timeout_s", value)
    assert checks.seconds("timeout_s", 2) == 2.0
