"""The revocation-list refresh task: fetches Google's format from a configurable URL, stores
it in the database atomically (a bad download keeps the last good list), is idempotent and
lets errors raise."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from attestation.android.revocation import StatusListError, load_status_list
from attestation.android.revocation_store import current_status_list
from attestation.models import AndroidRevocationList
from attestation.tasks import refresh_android_revocation_list
from attestation.testing import google_pki as g
from vigil.schedule import beat_schedule

pytestmark = pytest.mark.live
SAMPLE = Path(__file__).parent / "vectors" / "android" / "google-android-key-attestation" / "status.json"


@pytest.fixture
def google() -> Iterator[g.GoogleStandIn]:
    with g.GoogleStandIn() as stand_in:
        yield stand_in


@pytest.fixture
def target(settings: Any, tmp_path: Path, google: g.GoogleStandIn) -> Path:
    path = tmp_path / "status.json"
    settings.ATTESTATION_ANDROID_REVOCATION_LIST_PATH = str(path)
    settings.ATTESTATION_ANDROID_REVOCATION_LIST_URL = f"{google.url}/attestation/status"
    return path


@pytest.mark.django_db
def test_refresh_stores_googles_list_for_every_process_and_is_idempotent(
    google: g.GoogleStandIn, target: Path, django_capture_on_commit_callbacks: Any
) -> None:
    google.status_list = json.loads(SAMPLE.read_text())
    with django_capture_on_commit_callbacks(execute=True) as published:
        assert refresh_android_revocation_list.apply().get() == 5
    assert len(published) == 1  # config_cache.changed(): every process reloads
    stored = AndroidRevocationList.objects.get()
    assert stored.source == google.url + "/attestation/status" and stored.entry_count == 5
    with django_capture_on_commit_callbacks(execute=True) as published:
        assert refresh_android_revocation_list() == 5
    assert published == [] and AndroidRevocationList.objects.get().pk == stored.pk  # same version
    revoked = current_status_list()
    assert revoked["cc66e9a93713b6e643b26c15879786f7"] == "SUSPENDED"
    assert revoked["6681152659205225093"] == "REVOKED"
    assert not target.exists()  # no file: the database is what every host reads


def _stored() -> list[tuple[Any, ...]]:
    return list(AndroidRevocationList.objects.order_by("pk").values_list("pk", "sha256", "entries", "checked_at"))


@pytest.mark.django_db
@pytest.mark.parametrize("bad", [
    {"entries": {"zz-not-hex": {"status": "REVOKED"}}},
    {"no": "entries"},
    {"entries": {"abc": {"status": "FINE"}}},
    {"entries": {"abc": "REVOKED"}},
    ["entries"],
    "truncated: {\"entries\": {\"abc\": ",  # a partial download (not JSON)
])
def test_a_bad_download_raises_and_keeps_the_last_good_list(
    google: g.GoogleStandIn, target: Path, bad: Any, caplog: pytest.LogCaptureFixture
) -> None:
    google.status_list = json.loads(SAMPLE.read_text())
    refresh_android_revocation_list()
    before = _stored()
    if isinstance(bad, str):
        google.raw_status_body = bad.encode()
    else:
        google.status_list = bad
    with pytest.raises(StatusListError):
        refresh_android_revocation_list()
    assert _stored() == before
    assert current_status_list()["6681152659205225093"] == "REVOKED"
    assert "keeping the stored list" in caplog.text


@pytest.mark.django_db
def test_http_errors_raise(google: g.GoogleStandIn, target: Path) -> None:
    google.fail_with = 503
    with pytest.raises(requests.HTTPError):
        refresh_android_revocation_list()
    assert not target.exists() and not AndroidRevocationList.objects.exists()


@pytest.mark.django_db
def test_explicit_url_and_path_also_write_a_mirror_file(google: g.GoogleStandIn, tmp_path: Path) -> None:
    out = tmp_path / "other.json"
    assert refresh_android_revocation_list(f"{google.url}/attestation/status", str(out)) == 0
    assert json.loads(out.read_text()) == {"entries": {}}
    assert AndroidRevocationList.objects.get().entries == {}


def test_beat_schedule(settings: Any) -> None:
    settings.ATTESTATION_ANDROID_REVOCATION_REFRESH_SECONDS = 600
    assert beat_schedule()["refresh-android-revocation-list"]["schedule"] == 600
    settings.ATTESTATION_ANDROID_REVOCATION_REFRESH_SECONDS = 0
    assert "refresh-android-revocation-list" not in beat_schedule()


@pytest.mark.celery
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_real_worker_refreshes_the_list(google: g.GoogleStandIn, tmp_path: Path) -> None:
    """A real worker (solo pool, Redis broker) runs the task by name with plain arguments."""
    import time

    from tests.celery_support import celery_worker

    google.status_list = json.loads(SAMPLE.read_text())
    assert current_status_list() == {}  # warm: the shipped list, before the worker stores Google's
    out = tmp_path / "worker-status.json"
    with celery_worker("vigil-android-test") as sender:
        sender.send_task(
            "attestation.refresh_android_revocation_list",
            args=[f"{google.url}/attestation/status", str(out)],
            queue="vigil-android-test",
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not out.exists():
            time.sleep(0.3)
    assert load_status_list(out)["cc66e9a93713b6e643b26c15879786f7"] == "SUSPENDED"
    # stored by the worker's process, read by this one (its copy was warm and empty)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not AndroidRevocationList.objects.exists():
        time.sleep(0.3)
    assert current_status_list()["cc66e9a93713b6e643b26c15879786f7"] == "SUSPENDED"
