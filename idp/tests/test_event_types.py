"""Event types and outcomes are names, not strings: every event-recording call passes an
``EventType`` member and an ``Outcome`` member, no code compares an event's type or outcome
with a string, and docs/security-events.md lists exactly the enums' members."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from core.events import EventType, Outcome

ROOT = Path(__file__).resolve().parents[2]
APPS = ("idp", "accounts", "attestation", "sessions", "risk", "device_health", "shared_signals", "clients", "ops",
        "core", "simulator", "vigil")
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


def _may_be_text(node: ast.AST) -> bool:
    """A string, or a choice that can come out as one (``"a" if x else B``, ``x or "a"``)."""
    if isinstance(node, ast.IfExp):
        return _may_be_text(node.body) or _may_be_text(node.orelse)
    if isinstance(node, ast.BoolOp):
        return any(_may_be_text(value) for value in node.values)
    if isinstance(node, (ast.Set, ast.List, ast.Tuple)):
        return any(_may_be_text(element) for element in node.elts)
    return _is_text(node)


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


def _names_event_field(node: ast.AST) -> bool:
    """``x.outcome``, ``x.event_type`` or a variable named ``outcome``."""
    if isinstance(node, ast.Attribute):
        return node.attr in ("outcome", "event_type")
    return isinstance(node, ast.Name) and node.id == "outcome"


def _string_outcomes(tree: ast.AST) -> Iterator[int]:
    """Lines where a recorder gets ``outcome=`` a string, or an outcome or event type is
    compared with one (``event.outcome == "success"``, ``outcome in {"failure", ...}``)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _called_name(node) in RECORDERS:
            if any(k.arg == "outcome" and _may_be_text(k.value) for k in node.keywords):
                yield node.lineno
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_names_event_field(side) for side in sides) and any(_may_be_text(side) for side in sides):
                yield node.lineno


def string_outcomes(source: str) -> list[int]:
    return sorted(set(_string_outcomes(ast.parse(source))))


def test_the_scan_finds_a_plain_string_event_type() -> None:
    assert string_event_types('record("login.password", user=user)') == [1]
    assert string_event_types('attempts.fail(request, attempt, "login.password", "bad")') == [1]
    assert string_event_types('SecurityEvent.objects.filter(event_type=f"ssf.{x}")') == [1]
    assert string_event_types('record(EventType.LOGIN_PASSWORD, reason="bad")') == []


def test_no_app_code_passes_a_plain_string_event_type() -> None:
    found = [f"{path.relative_to(ROOT)}:{line}" for path in _app_modules()
             for line in string_event_types(path.read_text())]
    assert found == [], "use an core.events.EventType member"


def test_the_scan_finds_a_plain_string_outcome() -> None:
    assert string_outcomes('record(EventType.LOGOUT, outcome="success")') == [1]
    assert string_outcomes('_event(app, QUERY, reason, outcome="failure" if open else Outcome.DENIED)') == [1]
    assert string_outcomes('record(EventType.LOGOUT, outcome=given or "info")') == [1]
    assert string_outcomes('if event.outcome == "success": pass') == [1]
    assert string_outcomes('failed = event.outcome in {"failure", Outcome.DENIED}') == [1]
    assert string_outcomes('if "denied" != outcome: pass') == [1]
    assert string_outcomes('if event.event_type == "login.password": pass') == [1]
    assert string_outcomes('record(EventType.LOGOUT, outcome=Outcome.SUCCESS if ok else Outcome.INFO)') == []
    assert string_outcomes('if event.outcome == Outcome.SUCCESS and event.reason == "x": pass') == []
    assert string_outcomes('rule.condition == "rooted"') == []


def test_no_app_code_passes_or_compares_a_plain_string_outcome() -> None:
    found = [f"{path.relative_to(ROOT)}:{line}" for path in _app_modules()
             for line in string_outcomes(path.read_text())]
    assert found == [], "use a core.events.Outcome (or EventType) member"


def _doc_rows(section: str) -> list[tuple[str, str]]:
    """The ``| `MEMBER` | `value` | meaning |`` rows of the event types (before "## Outcomes")
    or of the outcomes (after it)."""
    event_types, _, outcomes = DOC.read_text().partition("\n## Outcomes\n")
    text = outcomes if section == "outcomes" else event_types
    return re.findall(r"^\| `([A-Z0-9_]+)` \| `([a-z0-9_.]+)` \| .+ \|$", text, re.M)


def test_the_documentation_lists_exactly_the_outcomes() -> None:
    rows = _doc_rows("outcomes")
    assert rows == [(member.name, member.value) for member in Outcome]


def test_the_documentation_lists_exactly_the_event_types() -> None:
    rows = _doc_rows("event_types")
    assert rows == [(member.name, member.value) for member in EventType]
