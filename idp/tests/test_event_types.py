"""Event types are names, not strings: every event-recording call passes an ``EventType``
member, and docs/security-events.md lists exactly the enum's members."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from core.events import EventType

ROOT = Path(__file__).resolve().parents[2]
APPS = ("idp", "accounts", "attestation", "sessions")
#: The functions that record an event, and the position of their event-type argument.
RECORDERS = {"record": 0, "build": 0, "_record": 0, "device_event": 0, "_event": 0, "credential_changed": 1,
             "admit": 3, "fail": 2}
DOC = ROOT / "docs" / "security-events.md"


def _app_modules() -> Iterator[Path]:
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "tests" not in path.parts and "migrations" not in path.parts:
                yield path


def _is_text(node: ast.AST) -> bool:
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str))


def _called_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _string_event_types(tree: ast.AST) -> Iterator[int]:
    """Lines where a recorder gets a string event type, or ``event_type=`` a string."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        position = RECORDERS.get(_called_name(node))
        if position is not None and len(node.args) > position and _is_text(node.args[position]):
            yield node.lineno
        if any(k.arg in ("event_type", "event_type__in") and _is_text(k.value) for k in node.keywords):
            yield node.lineno


def string_event_types(source: str) -> list[int]:
    return list(_string_event_types(ast.parse(source)))


def test_the_scan_finds_a_plain_string_event_type() -> None:
    assert string_event_types('record("login.password", user=user)') == [1]
    assert string_event_types('attempts.fail(request, attempt, "login.password", "bad")') == [1]
    assert string_event_types('SecurityEvent.objects.filter(event_type=f"ssf.{x}")') == [1]
    assert string_event_types('record(EventType.LOGIN_PASSWORD, reason="bad")') == []


def test_no_app_code_passes_a_plain_string_event_type() -> None:
    found = [f"{path.relative_to(ROOT)}:{line}" for path in _app_modules()
             for line in string_event_types(path.read_text())]
    assert found == [], "use an core.events.EventType member"


def test_the_documentation_lists_exactly_the_event_types() -> None:
    rows = re.findall(r"^\| `([A-Z0-9_]+)` \| `([a-z0-9_.]+)` \| .+ \|$", DOC.read_text(), re.M)
    assert rows == [(member.name, member.value) for member in EventType]
