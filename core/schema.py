"""Schema operations the migrations of the hot tables share (issue 19), PostgreSQL only: on any
other database they do nothing (it has neither pattern-ops twins nor storage parameters).

- ``varchar_pattern_ops`` twins: Django gives every indexed ``CharField`` a second index for
  ``LIKE 'x%'`` look-ups on PostgreSQL. The hot tables are searched by exact value only, and
  every index costs each insert (and each update that is not HOT) a write.
- Storage parameters (PostgreSQL, "CREATE TABLE: Storage Parameters"): ``fillfactor`` below 100
  leaves room on each page, so an update of columns no index covers can stay on the page (a HOT
  update, README "Heap-Only Tuples" of PostgreSQL's source) and writes no index entry;
  ``autovacuum_vacuum_scale_factor`` makes vacuum reclaim the dead versions each refresh leaves
  before they bloat the pages (docs/operations.md, "Sizing PostgreSQL").
"""

from __future__ import annotations

from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.models import Model

#: Parameters of the tables every refresh updates (docs/operations.md).
HOT_TABLE_STORAGE = {"fillfactor": 90, "autovacuum_vacuum_scale_factor": 0.02}


def _postgres(schema_editor: BaseDatabaseSchemaEditor) -> bool:
    return schema_editor.connection.vendor == "postgresql"


def drop_pattern_twins(schema_editor: BaseDatabaseSchemaEditor, table: str) -> None:
    """Drop every ``varchar_pattern_ops`` index of ``table``."""
    if not _postgres(schema_editor):
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s"
            " AND indexdef LIKE %s", [table, "%varchar_pattern_ops%"],
        )
        names = [row[0] for row in cursor.fetchall()]
    for name in names:
        schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")


def restore_pattern_twins(schema_editor: BaseDatabaseSchemaEditor, model: type[Model], *fields: str) -> None:
    """Create again the twins Django would make for ``fields`` of ``model`` (a migration's reverse)."""
    if not _postgres(schema_editor):
        return
    for name in fields:
        statement = schema_editor._create_like_index_sql(  # type: ignore[attr-defined]  # PostgreSQL editor
            model, model._meta.get_field(name))
        if statement is not None:
            schema_editor.execute(statement)


def set_storage(schema_editor: BaseDatabaseSchemaEditor, table: str, parameters: dict[str, float]) -> None:
    """``ALTER TABLE table SET (name = value, ...)``: pages written from now on keep the room."""
    if not _postgres(schema_editor):
        return
    assignments = ", ".join(f"{name} = {float(value):g}" for name, value in parameters.items())
    schema_editor.execute(f"ALTER TABLE {schema_editor.quote_name(table)} SET ({assignments})")


def reset_storage(schema_editor: BaseDatabaseSchemaEditor, table: str, names: list[str]) -> None:
    """Back to PostgreSQL's defaults for ``names``."""
    if not _postgres(schema_editor):
        return
    schema_editor.execute(f"ALTER TABLE {schema_editor.quote_name(table)} RESET ({', '.join(names)})")
