"""SQL built once, for the token endpoint's hot path.

The ORM compiles every query anew: for a ``select_related`` over four tables, or a
``bulk_create``, that costs more CPU than PostgreSQL spends running the statement. Here the
SQL is built once per database from the models' metadata and only the values change:

* ``JoinedQuery``: one SELECT over joined tables; rows become ordinary model instances
  (``Model.from_db``, with the converters the ORM applies) whose foreign keys already point
  at each other, so callers cannot tell the difference.
* ``insert``: ``INSERT ... VALUES (...), (...) RETURNING pk`` for new instances, values
  prepared by each field as ``save()`` would (defaults, ``auto_now_add``, JSON adaptation).
  No signals are sent: callers that need them send them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.db import DatabaseError, connections, router
from django.db.models import Field, Model
from django.db.models.fields.related_descriptors import ReverseOneToOneDescriptor
from django.db.models.signals import pre_save
from django.db.transaction import TransactionManagementError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Part:
    """One table of the query. The first part is the ``FROM`` table; each other part is joined
    with ``on`` (SQL over the aliases) and attached to ``parent``'s foreign key ``attr``."""

    model: type[Model]
    alias: str
    on: str = ""
    parent: str = ""
    attr: str = ""
    outer: bool = False  # LEFT JOIN: the instance is None when the row has none
    #: Read only these fields (attnames) and the primary key; the others are deferred (a query
    #: each when read, as ``QuerySet.only``). Empty: every concrete field.
    only: tuple[str, ...] = ()

    def fields(self) -> list[Field[Any, Any]]:
        """The fields read, in the model's order (``Model.from_db`` expects it)."""
        concrete = self.model._meta.concrete_fields
        return [f for f in concrete if not self.only or f.primary_key or f.attname in self.only]


# (SQL, per part: the part, its attnames, (column, converters) per field, its slice of the row)
_Plan = tuple[str, list[tuple[Part, list[str], list[tuple[Any, list[Any]]], int, int]]]


class JoinedQuery:
    """``parts`` may be a function returning them, for models only resolvable once apps are loaded."""

    def __init__(self, parts: list[Part] | Callable[[], list[Part]], where: str):
        self._parts = parts
        self.where = where
        self._plans: dict[str, _Plan] = {}

    @cached_property
    def parts(self) -> list[Part]:
        return self._parts() if callable(self._parts) else self._parts

    def _plan(self, alias: str) -> _Plan:
        plan = self._plans.get(alias)
        if plan is not None:
            return plan
        connection = connections[alias]
        quote = connection.ops.quote_name
        columns: list[str] = []
        layout = []
        tables: list[str] = []
        for part in self.parts:
            fields = part.fields()
            start = len(columns)
            converters = []
            for field in fields:
                columns.append(f"{part.alias}.{quote(_column(field))}")
                col = field.get_col(part.alias)
                converters.append((col, connection.ops.get_db_converters(col) + col.get_db_converters(connection)))
            layout.append((part, [f.attname for f in fields], converters, start, len(columns)))
            table = f"{quote(part.model._meta.db_table)} {part.alias}"
            if not tables:
                tables.append(table)
            else:
                tables.append(f"{'LEFT ' if part.outer else ''}JOIN {table} ON {part.on}")
        sql = f"SELECT {', '.join(columns)} FROM {' '.join(tables)} WHERE {self.where}"
        self._plans[alias] = plan = (sql, layout)
        return plan

    def sql(self, using: str = "default") -> str:
        """The SELECT, for a statement that wraps it (e.g. in a CTE, named by ``columns``)."""
        return self._plan(using)[0]

    def columns(self, using: str = "default") -> list[str]:
        """A name per column of the SELECT, ``<alias>_<attname>`` (``a_revoked_at``), for a CTE
        that wraps it: ``WITH found (<columns>) AS (<sql>)``."""
        return [f"{part.alias}_{name}" for part, attnames, *_ in self._plan(using)[1] for name in attnames]

    def first(self, params: list[Any], *, using: str = "default") -> dict[str, Model | None] | None:
        """The first row's instances by alias, linked through their foreign keys; None when no row."""
        sql, layout = self._plan(using)
        connection = connections[using]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        return None if row is None else self.instances(row, using=using)

    def instances(self, row: Sequence[Any], *, using: str = "default") -> dict[str, Model | None]:
        """One row of the SELECT (``columns`` in order) as instances by alias, linked through
        their foreign keys."""
        connection = connections[using]
        found: dict[str, Model | None] = {}
        for part, attnames, converters, start, end in self._plan(using)[1]:
            values = list(row[start:end])
            if part.outer and values[0] is None:  # no joined row (primary key NULL)
                found[part.alias] = None
                continue
            for i, (col, funcs) in enumerate(converters):
                for convert in funcs:
                    values[i] = convert(values[i], col, connection)
            found[part.alias] = part.model.from_db(using, attnames, values)
        for part in self.parts[1:]:
            parent = found[part.parent]
            if parent is None:
                continue
            child, descriptor = found[part.alias], getattr(type(parent), part.attr)
            if child is None and isinstance(descriptor, ReverseOneToOneDescriptor):
                descriptor.related.set_cached_value(parent, None)  # "no row" is known too: no query later
            else:
                setattr(parent, part.attr, child)
        return found


def _column(field: Field[Any, Any]) -> str:
    """A concrete field's column (the stubs allow None, which only non-concrete fields have)."""
    if field.column is None:
        raise TypeError(f"{field!r} has no column")
    return field.column


_insert_sql: dict[tuple[str, type[Model], int], tuple[str, list[Any]]] = {}


def insert(objs: Sequence[Model], *, using: str | None = None) -> None:
    """Insert new instances of one model in one statement and set their primary keys."""
    if not objs:
        return
    collecting = _deferred.get()
    if collecting is not None:  # inside ``no_writes``: the caller writes them
        collecting.append(objs)
        return
    model = type(objs[0])
    alias = using or router.db_for_write(model)
    connection = connections[alias]
    plan = _insert_sql.get((alias, model, len(objs)))
    if plan is None:
        quote = connection.ops.quote_name
        fields = [f for f in model._meta.concrete_fields if f is not model._meta.auto_field]
        row = f"({', '.join(['%s'] * len(fields))})"
        sql = (f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(_column(f)) for f in fields)}) "
               f"VALUES {', '.join([row] * len(objs))} RETURNING {quote(_column(model._meta.pk))}")
        _insert_sql[(alias, model, len(objs))] = plan = (sql, fields)
    sql, fields = plan
    params = [f.get_db_prep_save(f.pre_save(obj, True), connection) for obj in objs for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        keys = [r[0] for r in cursor.fetchall()]
    mark_inserted(objs, keys, alias)


def _concrete_field(model: type[Model], name: str) -> Field[Any, Any]:
    field = model._meta.get_field(name)
    if not isinstance(field, Field):
        raise TypeError(f"{model.__name__}.{name} is a reverse relation, not a column")
    return field


class Statement:
    """A fixed statement on one model's table (``{table}`` in ``template``), run with values
    prepared by the model's fields named in ``params``, in order (as a filter or update would)."""

    def __init__(self, model: type[Model], template: str, params: list[str]):
        self.model = model
        self.template = template
        self.fields = [_concrete_field(model, name) for name in params]
        self._sql: dict[str, str] = {}

    def prepared(self, values: tuple[Any, ...], connection: Any) -> tuple[str, list[Any]]:
        """The SQL for ``connection`` (built once) and ``values`` prepared by their fields."""
        sql = self._sql.get(connection.alias)
        if sql is None:
            table = connection.ops.quote_name(self.model._meta.db_table)
            sql = self._sql[connection.alias] = self.template.format(table=table)
        params = [field.get_db_prep_value(value, connection, prepared=False)
                  for field, value in zip(self.fields, values, strict=True)]
        return sql, params

    def _execute(self, cursor: Any, values: tuple[Any, ...], alias: str) -> None:
        cursor.execute(*self.prepared(values, connections[alias]))

    def run(self, *values: Any, using: str | None = None) -> int:
        """Execute; returns the number of rows it changed."""
        alias = using or router.db_for_write(self.model)
        with connections[alias].cursor() as cursor:
            self._execute(cursor, values, alias)
            return cursor.rowcount

    def rows(self, *values: Any, using: str | None = None) -> list[tuple[Any, ...]]:
        """Execute a SELECT on the model's read database; all its rows."""
        alias = using or router.db_for_read(self.model)
        with connections[alias].cursor() as cursor:
            self._execute(cursor, values, alias)
            return [tuple(row) for row in cursor.fetchall()]

    def first_row(self, *values: Any, using: str | None = None) -> tuple[Any, ...] | None:
        """Execute a statement with ``RETURNING`` (or a SELECT); its first row, None if none."""
        alias = using or router.db_for_write(self.model)
        with connections[alias].cursor() as cursor:
            self._execute(cursor, values, alias)
            row = cursor.fetchone()
        return tuple(row) if row is not None else None


# --- writes folded into one statement --------------------------------------------------------
_deferred: ContextVar[list[Sequence[Model]] | None] = ContextVar("vigil_sql_deferred", default=None)
# Saves of stored instances attempted inside ``no_writes`` (instance, its ``update_fields``).
_saving: ContextVar[list[tuple[Model, list[str] | None]] | None] = ContextVar("vigil_sql_saving", default=None)


def _note_save(sender: type[Model], instance: Model, update_fields: Any = None, **kwargs: Any) -> None:
    """``pre_save``: inside ``no_writes``, remember a stored instance about to be saved (its
    fields were set in memory before ``save()``; the write will be refused)."""
    saving = _saving.get()
    if saving is not None and not instance._state.adding:
        saving.append((instance, list(update_fields) if update_fields else None))


pre_save.connect(_note_save, dispatch_uid="core.sql.no_writes")


class QueryAttempted(Exception):
    """A write was about to run inside ``no_writes()``: the caller takes its general path (the
    write did not run)."""


_LOCKING = (" FOR UPDATE", " FOR NO KEY UPDATE", " FOR SHARE", " FOR KEY SHARE")


def _plain_read(sql: str) -> bool:
    """A SELECT that neither writes nor locks: outside a transaction it reads what it would
    read inside one at READ COMMITTED (each statement its own snapshot)."""
    return sql.lstrip()[:6].upper() == "SELECT" and not any(lock in sql.upper() for lock in _LOCKING)


@contextmanager
def no_writes(using: str = "default") -> Iterator[list[Sequence[Model]]]:
    """Run a block that may read but must not write or lock: ``insert()`` calls inside it are
    collected (yielded, in order, without primary keys) for the caller to write, e.g. inside
    one statement with ``gated_insert``; any other write, and any locking read, raises
    :class:`QueryAttempted` before it runs (also when the block caught that exception
    itself), as does a statement Django refuses outside a transaction (``select_for_update``).
    A stored instance whose ``save()`` was refused is read back (``_restore``): the fields it
    meant to write hold the database's values again, not the unsaved ones."""
    collected: list[Sequence[Model]] = []
    attempted: list[str] = []
    saving: list[tuple[Model, list[str] | None]] = []

    def refuse(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if _plain_read(sql):
            return execute(sql, params, many, context)
        attempted.append(sql)
        raise QueryAttempted(sql[:80])

    connection = connections[using]
    needs_rollback = connection.needs_rollback
    enclosing = _saving.get()
    token, saves = _deferred.set(collected), _saving.set(saving)
    try:
        with connection.execute_wrapper(refuse):
            yield collected
    except TransactionManagementError as error:  # e.g. select_for_update(), refused before it runs
        raise QueryAttempted(str(error)[:80]) from error
    except Exception as error:
        if attempted:  # whatever the block made of it: a statement was needed
            raise QueryAttempted(attempted[0][:80]) from error
        raise
    finally:
        _deferred.reset(token)
        _saving.reset(saves)
        if attempted:
            # No write ran (each was refused before it was sent), so an enclosing
            # transaction is intact: undo Django marking it for rollback on the way out.
            connection.needs_rollback = needs_rollback
            _restore(saving)
        elif enclosing is not None:  # nested: a refusal, if any, is the enclosing block's to undo
            enclosing.extend(saving)
    if attempted:
        raise QueryAttempted(attempted[0][:80])


def _restore(saving: list[tuple[Model, list[str] | None]]) -> None:
    """After a refusal: every stored instance whose ``save()`` was refused holds again what the
    database holds in the fields it meant to write. The caller's second attempt (in a
    transaction) reuses the same instances; one that still held its unsaved values would see
    nothing to change and write nothing (a device-health date once took every later refresh of
    a device off the one statement so). Only reached on the refused path: one read per
    instance."""
    for instance, fields in saving:
        try:
            instance.refresh_from_db(fields=fields)
        except ObjectDoesNotExist:  # deleted meanwhile: the second attempt finds it gone
            continue
        except DatabaseError:
            # The database went away: the refusal still stands (the caller forgets the attempt's
            # events and takes its transactional path, which meets the outage and answers 503).
            logger.warning("read-back after a refused write failed", exc_info=True)
            return


def gated_insert(model: type[Model], rows: int, gate: str, connection: Any, *, link: str = "") -> str:
    """``INSERT ... SELECT ... RETURNING pk`` for ``rows`` new instances of ``model``: a step of
    a data-modifying ``WITH`` (PostgreSQL) that inserts only when the step named ``gate``
    returned a row. With ``link`` (a foreign-key column), that column takes the ``id`` ``gate``
    returned: a row inserted by the same statement, whose key is not known before. Each value
    is cast to its column's type (an untyped parameter inside ``VALUES`` would be text).
    Values: ``insert_values``."""
    quote = connection.ops.quote_name
    fields = _insert_fields(model)
    row = f"({', '.join(f'%s::{f.db_type(connection)}' for f in fields)})"
    names = [f"c{i}" for i in range(len(fields))]
    rows_sql = f"(VALUES {', '.join([row] * rows)}) v({', '.join(names)})"
    if link:
        chosen = ", ".join(f"{gate}.id" if f.column == link else f"v.{n}" for f, n in zip(fields, names, strict=True))
        source = f"SELECT {chosen} FROM {rows_sql} CROSS JOIN {gate}"
    else:
        source = f"SELECT v.* FROM {rows_sql} WHERE EXISTS (SELECT 1 FROM {gate})"
    return (f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(_column(f)) for f in fields)}) "
            f"{source} RETURNING {quote(pk_column(model))}")


def insert_values(objs: Sequence[Model], connection: Any) -> list[Any]:
    """The parameters of ``gated_insert`` for ``objs``, prepared as ``insert`` prepares them."""
    fields = _insert_fields(type(objs[0]))
    return [f.get_db_prep_save(f.pre_save(obj, True), connection) for obj in objs for f in fields]


def _insert_fields(model: type[Model]) -> list[Field[Any, Any]]:
    return [f for f in model._meta.concrete_fields if f is not model._meta.auto_field]


def pk_column(model: type[Model]) -> str:
    return _column(model._meta.pk)


def mark_inserted(objs: Sequence[Model], keys: Sequence[Any], alias: str) -> None:
    """Give instances written by a caller's own statement their keys (as ``insert`` does)."""
    for obj, key in zip(objs, keys, strict=True):
        obj.pk = key
        obj._state.adding = False
        obj._state.db = alias
