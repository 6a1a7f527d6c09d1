"""Demo scenarios of the device simulators, one module each: ``run(issuer, say)``
(``manage.py device_demo`` runs them after the basic flow; their server-side set-up is in
``simulator.demo_setup`` and ``bootstrap_demo``)."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from . import devicecheck_reinstall, rooted_device, unattested_device


class Scenario(StrEnum):
    ROOTED = "rooted"  # graded trust: a rooted Android device gets reduced access
    UNATTESTED = "unattested"  # the fallback: a device that cannot attest, then upgrades
    DEVICECHECK = "devicecheck"  # a phone flagged at Apple is refused after a reinstall


RUNS: dict[Scenario, Callable[[str, Callable[[str], None]], None]] = {
    Scenario.ROOTED: rooted_device.run,
    Scenario.UNATTESTED: unattested_device.run,
    Scenario.DEVICECHECK: devicecheck_reinstall.run,
}
