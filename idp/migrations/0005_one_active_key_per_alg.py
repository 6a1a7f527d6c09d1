"""One active signing key per algorithm (the lock behind keys.ensure_keys on a first start).

Two processes starting at once on an earlier version could each create a first key for the
same algorithm. Before the constraint is added, every active key but the newest of each
algorithm becomes ``retiring``: still published, so the tokens it signed keep verifying,
for a day or the longest per-client token lifetime, whichever is longer."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import migrations, models
from django.db.models import Max
from django.utils import timezone


def retire_duplicate_active_keys(apps: Any, schema_editor: Any) -> None:
    SigningKey = apps.get_model("idp", "SigningKey")
    longest = apps.get_model("idp", "Client").objects.aggregate(m=Max("access_token_lifetime"))["m"] or 0
    grace = max(timedelta(days=1), timedelta(seconds=longest + 60))
    now = timezone.now()
    seen: set[str] = set()
    for key in SigningKey.objects.filter(status="active").order_by("alg", "-activates_at", "-created_at"):
        if key.alg in seen:
            key.status, key.retired_at, key.remove_after = "retiring", now, now + grace
            key.save(update_fields=["status", "retired_at", "remove_after"])
        seen.add(key.alg)


class Migration(migrations.Migration):

    dependencies = [
        ("idp", "0004_securityevent_idp_secevent_session_id"),
    ]

    operations = [
        migrations.RunPython(retire_duplicate_active_keys, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="signingkey",
            constraint=models.UniqueConstraint(
                condition=models.Q(("status", "active")), fields=("alg",), name="idp_one_active_key_per_alg"
            ),
        ),
    ]
