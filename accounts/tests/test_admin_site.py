"""The admin's second-factor rule and its development exception (``accounts.admin_site``);
the sign-in itself is tested in idp/tests/test_admin_step_up.py."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.admin_site import single_factor_allowed
from accounts.checks import check_admin_second_factor


@pytest.mark.parametrize("value", ["0", "false", "off", ""])
def test_the_exception_set_off_as_a_string_is_off_everywhere(settings: Any, value: str) -> None:
    """The check and the site read the setting the same way: "0" neither lets staff in with
    a password alone nor stops the server from starting."""
    settings.VIGIL_ADMIN_ALLOW_SINGLE_FACTOR = value
    settings.DEBUG = False
    assert check_admin_second_factor() == []
    settings.DEBUG = True
    assert not single_factor_allowed()


def test_the_exception_set_on_as_a_string_needs_debug(settings: Any) -> None:
    settings.VIGIL_ADMIN_ALLOW_SINGLE_FACTOR = "1"
    settings.DEBUG = False
    assert [problem.id for problem in check_admin_second_factor()] == ["accounts.E005"]
    assert not single_factor_allowed()
    settings.DEBUG = True
    assert check_admin_second_factor() == [] and single_factor_allowed()
