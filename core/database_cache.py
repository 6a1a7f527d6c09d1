"""Django's database cache with an atomic ``incr``: the cache of a deployment without Redis
(``vigil/settings.py``: the ``vigil_cache`` table on the database the tokens use).

Django's ``BaseCache.incr`` reads the value, adds, and writes it back with ``set()``. On the
database cache two concurrent increments then read the same count and write the same sum, so
a burst of parallel requests was counted as a few: the login throttle, the request rates
(``core.rates``), the unattested refresh limit and the attestation failure streaks all admitted
more than their limits (30 parallel requests against a limit of 5 were all admitted). And
``set()`` gave the key the default timeout again, so a counter meant to live an hour from its
first increment lived five minutes from its last.

Here an increment is one locked read-modify-write that leaves the expiry as it was:

- PostgreSQL: an ``UPDATE`` that changes nothing takes the row's lock, then the value is read,
  added to and written back in the same transaction; a concurrent increment waits for it.
- SQLite: one ``UPDATE ... RETURNING`` that adds through a Python function registered on the
  connection. (Three statements in a deferred transaction would deadlock there: two writers
  each holding a read lock while waiting for the other's; SQLite answers one of them
  "database is locked" rather than waiting.) A concurrent writer waits out ``timeout``.

A key missing or expired is Django's ``ValueError``, as for every backend. Each cache call is
still a query on the database.
"""

from __future__ import annotations

import base64
import pickle
from typing import Any

from django.core.cache.backends.db import DatabaseCache as DjangoDatabaseCache
from django.db import connections, router, transaction
from django.utils import timezone

#: The SQLite function adding to a stored value (``_added``).
ADD_FUNCTION = "vigil_cache_add"


class DatabaseCache(DjangoDatabaseCache):
    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        stored = self.make_and_validate_key(key, version=version)
        alias = router.db_for_write(self.cache_model_class)
        connection = connections[alias]
        table = connection.ops.quote_name(self.cache_model_class._meta.db_table)
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        if connection.vendor == "sqlite":
            connection.ensure_connection()
            connection.connection.create_function(ADD_FUNCTION, 2, self._added, deterministic=True)
            with connection.cursor() as cursor:
                cursor.execute(f"UPDATE {table} SET value = {ADD_FUNCTION}(value, %s) "
                               f"WHERE cache_key = %s AND expires > %s RETURNING value", [delta, stored, now])
                row = cursor.fetchone()
            if row is None:
                raise ValueError(f"Key '{key}' not found")
            return self._decoded(row[0])
        with transaction.atomic(using=alias), connection.cursor() as cursor:
            cursor.execute(f"UPDATE {table} SET expires = expires WHERE cache_key = %s AND expires > %s", [stored, now])
            if cursor.rowcount != 1:
                raise ValueError(f"Key '{key}' not found")
            cursor.execute(f"SELECT value FROM {table} WHERE cache_key = %s", [stored])
            value = self._decoded(cursor.fetchone()[0]) + delta
            cursor.execute(f"UPDATE {table} SET value = %s WHERE cache_key = %s", [self._encoded(value), stored])
        return value

    def _added(self, value: str, delta: int) -> str:
        return self._encoded(self._decoded(value) + delta)

    def _encoded(self, value: Any) -> str:
        """As Django's ``DatabaseCache._base_set`` stores a value."""
        return base64.b64encode(pickle.dumps(value, self.pickle_protocol)).decode("latin1")

    @staticmethod
    def _decoded(value: str) -> Any:
        """As Django's ``DatabaseCache.get_many`` reads one: the table is ours alone."""
        return pickle.loads(base64.b64decode(value.encode()))  # noqa: S301
