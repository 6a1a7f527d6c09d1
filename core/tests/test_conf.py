"""``core.conf``: a rate setting is read by the reader that knows its full name, so an error
names the setting without the name being written again (system checks ``vigil.E040``,
``attestation.E004``)."""

from __future__ import annotations

from typing import Any

import pytest

from core.conf import SettingError, SettingsReader, unreadable
from core.rates import Rate

READER = SettingsReader("IDP_")


def test_a_rate_is_read_in_drf_syntax_with_its_default(settings: Any) -> None:
    settings.IDP_PAR_RATE = "5/s"
    assert READER.rate("PAR_RATE", "60/min") == Rate(5, 1)
    assert READER.rate("NOT_SET_RATE", "60/min") == Rate(60, 60)


def test_a_rate_that_cannot_be_read_names_its_setting(settings: Any) -> None:
    settings.IDP_PAR_RATE = "60/week"
    with pytest.raises(SettingError) as refused:
        READER.rate("PAR_RATE", "60/min")
    assert str(refused.value).startswith("IDP_PAR_RATE: '60/week' is not a rate")
    assert isinstance(refused.value, ValueError)  # what callers of a rate caught before


def test_unreadable_lists_the_errors_of_the_reads_that_fail_in_order(settings: Any) -> None:
    settings.IDP_PAR_RATE, settings.IDP_PAR_ADDRESS_RATE = "0/min", "many/min"
    errors = unreadable(lambda: READER.rate("PAR_RATE", "1/s"), lambda: READER.rate("OTHER_RATE", "1/s"),
                        lambda: READER.rate("PAR_ADDRESS_RATE", "1/s"))
    assert [str(error).split(":")[0] for error in errors] == ["IDP_PAR_RATE", "IDP_PAR_ADDRESS_RATE"]
    assert unreadable(lambda: READER.rate("OTHER_RATE", "1/s")) == []
