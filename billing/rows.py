"""The statements of the quota hot path as plain SQL.

Building an UPDATE through the ORM costs about half a millisecond of CPU here, far more than the database
spends running it, and every relayed request makes eleven such statements (billing.quota). These helpers
build each statement's text once per table and column list and pass every value as a parameter, prepared
by the model field as the ORM would (dates, booleans). Row counts are matched rows on every backend
(Django connects to MySQL with FOUND_ROWS), so a conditional UPDATE tells whether its row qualified.
"""

from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

from django.db import connection, models

# `type: ignore[arg-type]` on the calls of the cached statement builders: a model class is hashable, but without
# Django's type stubs it is type[Any] to mypy, which mypy does not match with Hashable.


def take(model: type[models.Model], column: str, row_id: int, amount: int) -> bool:
    """`column -= amount` on one row if that leaves it at zero or more; whether it did."""
    sql = _take_sql(model, column)  # type: ignore[arg-type]
    with connection.cursor() as cursor:
        cursor.execute(sql, [amount, row_id, amount])
        return cursor.rowcount > 0


def add(model: type[models.Model], where: dict[str, Any], increments: dict[str, int], **also: Any) -> int:
    """`column += value` for each increment and `column = value` for each of `also`, on the rows matching
    `where` (equality on every item); the number of rows matched."""
    sql = _add_sql(model, tuple(increments), tuple(also), tuple(where))  # type: ignore[arg-type]
    values = [*increments.values(), *_prepared(model, also), *_prepared(model, where)]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        return cursor.rowcount


def insert(model: type[models.Model], objs: Sequence[models.Model]) -> None:
    """Insert unsaved objects with every concrete field but the automatic primary key (ids are not read back)."""
    if not objs:
        return
    fields = _insert_fields(model)  # type: ignore[arg-type]
    rows = [[field.get_db_prep_save(getattr(obj, field.attname), connection) for field in fields] for obj in objs]
    with connection.cursor() as cursor:
        cursor.executemany(_insert_sql(model), rows)  # type: ignore[arg-type]


def set_in(model: type[models.Model], ids: Sequence[int], **values: Any) -> None:
    """`column = value` for each of `values` on the rows whose primary key is in `ids`."""
    sql = _set_in_sql(model, tuple(values), len(ids))  # type: ignore[arg-type]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*_prepared(model, values), *ids])


def select(
    model: type[models.Model],
    columns: Sequence[str],
    where: dict[str, Any],
    within: tuple[str, list],
    lock: bool = False,
) -> list[tuple]:
    """Rows (tuples of `columns`) matching `where` whose `within[0]` is one of `within[1]`, in primary key
    order; with `lock`, locked for update where the database can."""
    column, choices = within
    if not choices:
        return []
    sql = _select_sql(model, tuple(columns), tuple(where), column, len(choices), lock)  # type: ignore[arg-type]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*_prepared(model, where), *choices])
        return cursor.fetchall()


def _prepared(model: type[models.Model], values: dict[str, Any]) -> Iterable[Any]:
    return (model._meta.get_field(name).get_db_prep_value(value, connection) for name, value in values.items())


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def _column(model: type[models.Model], name: str) -> str:
    return _q(model._meta.get_field(name).column)


@cache
def _take_sql(model: type[models.Model], column: str) -> str:
    table, col, pk = _q(model._meta.db_table), _column(model, column), _q(model._meta.pk.column)
    return f"UPDATE {table} SET {col} = {col} - %s WHERE {pk} = %s AND {col} >= %s"


@cache
def _add_sql(model: type[models.Model], increments: tuple[str, ...], also: tuple[str, ...], where: tuple[str, ...]):
    sets = [f"{_column(model, name)} = {_column(model, name)} + %s" for name in increments]
    sets += [f"{_column(model, name)} = %s" for name in also]
    conditions = " AND ".join(f"{_column(model, name)} = %s" for name in where)
    return f"UPDATE {_q(model._meta.db_table)} SET {', '.join(sets)} WHERE {conditions}"


@cache
def _insert_fields(model: type[models.Model]) -> list[models.Field]:
    return [field for field in model._meta.concrete_fields if not field.primary_key]


@cache
def _insert_sql(model: type[models.Model]) -> str:
    fields = _insert_fields(model)  # type: ignore[arg-type]
    columns = ", ".join(_q(field.column) for field in fields)
    return f"INSERT INTO {_q(model._meta.db_table)} ({columns}) VALUES ({_marks(len(fields))})"


@cache
def _set_in_sql(model: type[models.Model], columns: tuple[str, ...], count: int) -> str:
    sets = ", ".join(f"{_column(model, name)} = %s" for name in columns)
    return f"UPDATE {_q(model._meta.db_table)} SET {sets} WHERE {_q(model._meta.pk.column)} IN ({_marks(count)})"


@cache
def _select_sql(
    model: type[models.Model], columns: tuple[str, ...], where: tuple[str, ...], column: str, count: int, lock: bool
) -> str:
    conditions = [f"{_column(model, name)} = %s" for name in where]
    conditions.append(f"{_column(model, column)} IN ({_marks(count)})")
    locking = " FOR UPDATE" if lock and connection.features.has_select_for_update else ""
    return (
        f"SELECT {', '.join(_column(model, name) for name in columns)} FROM {_q(model._meta.db_table)} "
        f"WHERE {' AND '.join(conditions)} ORDER BY {_q(model._meta.pk.column)}{locking}"
    )


def _marks(count: int) -> str:
    return ", ".join(["%s"] * count)
