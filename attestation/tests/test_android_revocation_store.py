"""The Android revocation status list lives in the database and reaches every process: the
verifier refuses what the stored list names, an update written elsewhere (raw SQL + a new
config generation) reaches this process at its next read, another process reads the same
list, a broken row fails closed, and a warm enrollment reads nothing more."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from attestation.android import chain as chain_steps
from attestation.android.revocation_store import current_status_list, store_status_list
from attestation.errors import Reason
from attestation.models import AndroidRevocationList
from core import config_cache

from .test_android_key_attestation import chain, reason_of, verify

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
TABLE = AndroidRevocationList._meta.db_table
SERIAL = 0x0ABCDEF


def _document(*serials: str, status: str = "REVOKED") -> dict[str, Any]:
    return {"entries": {s: {"status": status, "reason": "KEY_COMPROMISE"} for s in serials}}


def _write_elsewhere(entries: Any) -> None:
    """What another host's worker does: a row through raw SQL, then a new shared generation."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {TABLE} (entries, entry_count, sha256, source, fetched_at, checked_at) "
            "VALUES (%s::jsonb, 0, '', 'elsewhere', now(), now())", [json.dumps(entries)])
    cache.set(config_cache.GENERATION_KEY, os.urandom(8).hex(), timeout=None)


@pytest.mark.django_db
def test_verifier_refuses_a_certificate_revoked_in_the_database() -> None:
    pem = chain(serial=SERIAL)
    assert verify(pem, revoked=None)  # empty table: the shipped (empty) list
    store_status_list(_document("00ABCDEF"), source="test", now=timezone.now())
    assert reason_of(pem, revoked=None) == Reason.CERTIFICATE_REVOKED
    assert verify(chain(serial=SERIAL + 1), revoked=None)


@pytest.mark.django_db
def test_an_intermediate_suspended_in_the_database_is_refused() -> None:
    pem = chain(serial=SERIAL)
    intermediate = chain_steps.parse_chain(pem)[1].serial_hex
    store_status_list(_document(intermediate, status="SUSPENDED"), source="test", now=timezone.now())
    assert reason_of(pem, revoked=None) == Reason.CERTIFICATE_REVOKED


@pytest.mark.django_db
def test_an_update_by_another_process_reaches_this_one_at_its_next_read() -> None:
    store_status_list(_document("1"), source="test", now=timezone.now())
    assert current_status_list() == {"1": "REVOKED"}  # warm
    with connection.cursor() as cursor:  # a row with no generation change is not seen yet:
        cursor.execute(f"UPDATE {TABLE} SET entries = %s::jsonb", [json.dumps({"2": "REVOKED"})])
    assert current_status_list() == {"1": "REVOKED"}  # ... the copy is what the generation promises
    _write_elsewhere({"abcdef": "REVOKED"})
    assert current_status_list() == {"abcdef": "REVOKED"}
    assert reason_of(chain(serial=SERIAL), revoked=None) == Reason.CERTIFICATE_REVOKED


@pytest.mark.django_db
def test_same_document_keeps_the_version_and_the_generation(django_capture_on_commit_callbacks: Any) -> None:
    store_status_list(_document("1"), source="test", now=timezone.now())
    assert current_status_list() == {"1": "REVOKED"}
    generation = cache.get(config_cache.GENERATION_KEY)
    assert generation
    first = AndroidRevocationList.objects.get()
    with django_capture_on_commit_callbacks(execute=True) as nothing:
        assert store_status_list(_document("01"), source="test", now=timezone.now()) == 1  # same list, other spelling
    assert nothing == []
    assert AndroidRevocationList.objects.get().pk == first.pk
    assert AndroidRevocationList.objects.get().checked_at > first.checked_at
    assert cache.get(config_cache.GENERATION_KEY) == generation  # no process has to reload
    with django_capture_on_commit_callbacks(execute=True) as published:
        store_status_list(_document("2"), source="test", now=timezone.now())
    assert published and cache.get(config_cache.GENERATION_KEY) != generation


@pytest.mark.django_db
def test_only_the_last_versions_are_kept() -> None:
    for n in range(1, 9):
        store_status_list(_document(format(n, "x")), source="test", now=timezone.now())
    assert AndroidRevocationList.objects.count() == 5
    assert current_status_list() == {"8": "REVOKED"}


@pytest.mark.django_db
@pytest.mark.parametrize("entries", [{"zz": "REVOKED"}, {"0a": "REVOKED"}, {"a": "GOOD"}, ["a"], "a", None])
def test_an_unreadable_row_fails_closed(entries: Any) -> None:
    pem = chain(serial=SERIAL + 1)  # on no list: it verifies while the list is readable
    assert verify(pem, revoked=None)
    _write_elsewhere(entries)
    assert reason_of(pem, revoked=None) == Reason.REVOCATION_LIST_UNAVAILABLE
    config_cache.clear_local()
    assert reason_of(pem, revoked=None) == Reason.REVOCATION_LIST_UNAVAILABLE  # never cached as good
    store_status_list(_document("1"), source="test", now=timezone.now())  # the next good download repairs it
    assert verify(pem, revoked=None)


@pytest.mark.django_db
def test_unreadable_seed_file_fails_closed(settings: Any, tmp_path: Path) -> None:
    path = tmp_path / "mirror.json"
    path.write_text('{"entries": {"abcdef": {"status": "REVOKED"}}}')
    settings.ATTESTATION_ANDROID_REVOCATION_LIST_PATH = str(path)
    assert reason_of(chain(serial=SERIAL), revoked=None) == Reason.CERTIFICATE_REVOKED  # empty table: the mirror
    path.write_text('{"entries": ')  # an operator's half-written mirror
    assert reason_of(chain(serial=SERIAL + 1), revoked=None) == Reason.REVOCATION_LIST_UNAVAILABLE
    path.write_text('{"entries": {}}')  # the copy follows the file's changes, no restart
    assert verify(chain(serial=SERIAL), revoked=None)


@pytest.mark.django_db
def test_a_database_error_fails_closed_and_leaves_the_transaction_usable() -> None:
    from django.db import transaction

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {TABLE}_gone")
        config_cache.clear_local()
        assert reason_of(chain(serial=SERIAL), revoked=None) == Reason.REVOCATION_LIST_UNAVAILABLE
        with connection.cursor() as cursor:  # the savepoint kept the request's transaction alive
            cursor.execute(f"ALTER TABLE {TABLE}_gone RENAME TO {TABLE}")
    assert verify(chain(serial=SERIAL), revoked=None)


CHILD = """
import json, sys
import django
django.setup()
from attestation.android.revocation_store import current_status_list
for line in sys.stdin:
    print(json.dumps(current_status_list(), sort_keys=True), flush=True)
"""


@pytest.mark.django_db(transaction=True)
def test_two_processes_read_the_same_list() -> None:
    from tests.celery_support import worker_database_url

    env = {**os.environ, "DATABASE_URL": worker_database_url(), "VIGIL_TESTING": "1",
           "DJANGO_SETTINGS_MODULE": "vigil.settings"}
    store_status_list(_document("1"), source="test", now=timezone.now())
    child = subprocess.Popen([sys.executable, "-c", CHILD], env=env, cwd=Path(__file__).parents[2],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdin and child.stdout

        def ask() -> Any:
            child.stdin.write("?\n")  # type: ignore[union-attr]
            child.stdin.flush()  # type: ignore[union-attr]
            return json.loads(child.stdout.readline())  # type: ignore[union-attr]

        assert ask() == current_status_list() == {"1": "REVOKED"}
        assert ask() == {"1": "REVOKED"}  # warm in the child
        store_status_list(_document("2", "3"), source="test", now=timezone.now())  # the worker, here
        assert ask() == current_status_list() == {"2": "REVOKED", "3": "REVOKED"}
    finally:
        child.kill()
        child.wait(timeout=10)


@pytest.mark.django_db
def test_the_admin_shows_the_stored_versions_read_only(admin_client: Any) -> None:
    from django.urls import reverse

    store_status_list(_document("abc"), source="https://example.test/status", now=timezone.now())
    row = AndroidRevocationList.objects.get()
    listing = admin_client.get(reverse("admin:attestation_androidrevocationlist_changelist"))
    assert listing.status_code == 200 and b"https://example.test/status" in listing.content
    page = admin_client.get(reverse("admin:attestation_androidrevocationlist_change", args=[row.pk]))
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert admin_client.post(reverse("admin:attestation_androidrevocationlist_delete", args=[row.pk]),
                             {"post": "yes"}).status_code == 403
    assert AndroidRevocationList.objects.get().entries == {"abc": "REVOKED"}
