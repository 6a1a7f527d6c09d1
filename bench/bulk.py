"""``INSERT ... SELECT generate_series`` for a Django model, robust to new columns.

The bench names the columns it cares about as SQL expressions over ``g`` (the series
value); every other concrete column gets its model default (or NULL), so a field added
to Vigil's models later does not break seeding. Needs Django only.
"""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.db.models import NOT_PROVIDED, Model


def insert_series(model: type[Model], count: int, exprs: dict[str, str], params: dict[str, Any] | None = None,
                  *, start: int = 1) -> None:
    """Insert ``count`` rows of ``model``: ``exprs`` maps column names to SQL over ``g``;
    ``params`` maps placeholders ``%(name)s`` used in them to values."""
    columns: list[str] = []
    values: list[str] = []
    bound: dict[str, Any] = dict(params or {})
    for field in model._meta.concrete_fields:
        column = field.column
        if column in exprs:
            columns.append(column)
            values.append(exprs[column])
            continue
        if field.primary_key:
            continue
        if field.has_default() or field.default is not NOT_PROVIDED:
            value = field.get_db_prep_save(field.get_default(), connection)
        elif field.null:
            value = None
        elif field.get_internal_type() in {"CharField", "TextField", "SlugField", "EmailField"}:
            value = ""
        else:
            raise ValueError(f"{model.__name__}.{field.name} needs a value for the bench seed")
        name = f"default_{column}"
        bound[name] = value
        columns.append(column)
        values.append(f"%({name})s")
    sql = (
        f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) "
        f"SELECT {', '.join(values)} FROM generate_series(%(series_start)s::bigint, %(series_end)s::bigint) AS g"
    )
    bound.update(series_start=start, series_end=start + count - 1)
    with connection.cursor() as cur:
        cur.execute(sql, bound)
