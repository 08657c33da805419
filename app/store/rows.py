"""Prebuilt statements for the reads and writes every page of an enrollment makes.

An ORM session builds each statement, computes its cache key and runs the unit of work: about
0.3–0.6 ms a statement here. Even a prebuilt Core statement on an SQLAlchemy connection runs
some 160 Python calls (cache key, execution context, result object) and takes ~0.1 ms warm,
~0.3 ms in a request's freshly woken worker thread. The pages a new hire walks through (and
the API invite) make a few dozen statements, so those paths use `Transaction`: SQL compiled
by SQLAlchemy once per statement and dialect, run on the pooled driver connection with the
column types' own bind and result processors. Everything else keeps the ORM.

Rows come back as transient model instances (in no session), for reading only: a change is
written with `update_row`, never by setting an attribute or adding the instance to a session.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any, TypeVar, cast

from sqlalchemy import ColumnElement, Delete, Insert, Select, Table, Update, and_, bindparam
from sqlalchemy import delete as sql_delete
from sqlalchemy import insert as sql_insert
from sqlalchemy import select as sql_select
from sqlalchemy import update as sql_update
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import configure_mappers
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from app.store.models import Base

M = TypeVar("M", bound=Base)
Processor = Callable[[Any], Any]

# A value for update_row: add one to the column's current value.
INCREMENT = object()


def table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


# -- running compiled statements ---------------------------------------------------------------
@dataclass
class _Compiled:
    """A statement as the driver takes it, with what turns values into parameters and back."""

    statement: ClauseElement  # held, so that the id keying the cache stays this statement's
    sql: str
    positional: bool
    names: tuple[str, ...]  # the parameters, in the driver's order when positional
    binds: tuple[Processor | None, ...]
    fixed: dict[str, Any]  # values written into the statement itself (LIMIT 1, status = 'x')
    result_keys: tuple[str, ...]
    result_types: tuple[Any, ...]
    results: tuple[Processor | None, ...] | None = field(default=None)  # set at the first run

    @classmethod
    def of(cls, statement: ClauseElement, dialect: Dialect) -> _Compiled:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        by_name = {name: bind for bind, name in compiled.bind_names.items()}
        if compiled.escaped_bind_names:
            raise ValueError("a parameter name the driver needs escaped: rename it")
        positional = dialect.positional
        names = tuple(compiled.positiontup or ()) if positional else tuple(by_name)
        for name in names:
            if by_name[name].expanding:
                raise ValueError("IN (...) is compiled per call: write it as OR of equalities")
        columns = list(getattr(statement, "exported_columns", ()))
        return cls(
            statement=statement,
            sql=compiled.string,
            positional=positional,
            names=names,
            binds=tuple(
                by_name[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
            ),
            fixed={
                name: bind.effective_value for name, bind in by_name.items() if not bind.required
            },
            result_keys=tuple(column.key for column in columns),
            result_types=tuple(column.type for column in columns),
        )

    def parameters(self, values: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        converted = []
        for name, process in zip(self.names, self.binds, strict=True):
            value = values[name] if name in values else self.fixed[name]
            # None goes through too, as SQLAlchemy hands it over (JSON stores it as null)
            converted.append(value if process is None else process(value))
        if self.positional:
            return converted
        return dict(zip(self.names, converted, strict=True))

    def processors(self, description: Sequence[Any], dialect: Dialect) -> tuple[Any, ...]:
        if self.results is None:
            self.results = tuple(
                kind.dialect_impl(dialect).result_processor(dialect, column[1])
                for kind, column in zip(self.result_types, description, strict=True)
            )
        return self.results


_COMPILED: dict[tuple[int, str, str], _Compiled] = {}
_COMPILING = threading.Lock()


def _compiled(statement: ClauseElement, dialect: Dialect) -> _Compiled:
    key = (id(statement), dialect.name, dialect.driver)  # psycopg's SQL carries casts
    found = _COMPILED.get(key)
    if found is None:
        with _COMPILING:
            found = _COMPILED.get(key) or _Compiled.of(statement, dialect)
            _COMPILED[key] = found
    return found


@dataclass(frozen=True)
class Result:
    """The rows a statement returned (as dicts of column key to value), and how many it changed."""

    rows: list[dict[str, Any]]
    rowcount: int

    def first(self) -> dict[str, Any] | None:
        return self.rows[0] if self.rows else None

    def scalar_one(self) -> Any:
        if len(self.rows) != 1 or len(self.rows[0]) != 1:
            raise ValueError(f"expected one value, got {len(self.rows)} rows")
        return next(iter(self.rows[0].values()))


class Transaction:
    """One transaction on a connection from the engine's pool (see the module's docstring).

    Statements must be built once (module level or cached), not per call: each is compiled
    the first time it runs and kept by identity.
    """

    def __init__(self, connection: Any, dialect: Dialect):
        self._connection = connection  # the pool's proxy of the driver connection
        self._dialect = dialect

    def execute(self, statement: ClauseElement, values: Mapping[str, Any] | None = None) -> Result:
        compiled = _compiled(statement, self._dialect)
        parameters = compiled.parameters(values or {})
        cursor = self._connection.cursor()
        try:
            cursor.execute(compiled.sql, parameters)
            found: list[dict[str, Any]] = []
            if cursor.description is not None:
                processors = compiled.processors(cursor.description, self._dialect)
                keys = compiled.result_keys
                for row in cursor.fetchall():
                    found.append(
                        {
                            key: value if process is None else process(value)
                            for key, process, value in zip(keys, processors, row, strict=True)
                        }
                    )
            return Result(found, cursor.rowcount)
        except self._dialect.loaded_dbapi.Error as exc:
            disconnected = self._dialect.is_disconnect(exc, self._connection, cursor)
            if disconnected:
                self._connection.invalidate(exc)
            # SQLAlchemy's own error classes (IntegrityError, OperationalError), as a
            # Connection raises them; the values stay out of the message.
            raise DBAPIError.instance(
                compiled.sql,
                parameters,
                exc,
                self._dialect.loaded_dbapi.Error,
                hide_parameters=True,
                connection_invalidated=disconnected,
                dialect=self._dialect,
            ) from exc
        finally:
            cursor.close()


@contextmanager
def transaction(engine: Engine) -> Iterator[Transaction]:
    """A Transaction on a pooled connection: committed on success, rolled back on error."""
    connection = engine.raw_connection()
    try:
        yield Transaction(connection, engine.dialect)
        connection.commit()
    except BaseException:
        if connection.is_valid:
            connection.rollback()
        raise
    finally:
        connection.close()


# -- the statements ----------------------------------------------------------------------------
def _match(t: Table, names: tuple[str, ...], nulls: tuple[str, ...]) -> ColumnElement[bool]:
    """column = :w_column for each name; column IS NULL for each of `nulls`."""
    return and_(
        *(t.c[name] == bindparam(f"w_{name}") for name in names),
        *(t.c[name].is_(None) for name in nulls),
    )


@cache
def _select(model: type[Base], names: tuple[str, ...], nulls: tuple[str, ...]) -> Select[Any]:
    t = table(model)
    return sql_select(t).where(_match(t, names, nulls))


@cache
def _update(
    model: type[Base],
    names: tuple[str, ...],
    nulls: tuple[str, ...],
    sets: tuple[str, ...],
    increments: tuple[str, ...],
) -> Update:
    t = table(model)
    values: dict[str, Any] = {name: bindparam(f"v_{name}", type_=t.c[name].type) for name in sets}
    values.update({name: t.c[name] + 1 for name in increments})
    return sql_update(t).where(_match(t, names, nulls)).values(values)


@cache
def _insert(model: type[Base], names: tuple[str, ...]) -> Insert:
    t = table(model)
    # inline: no RETURNING of generated keys, which nothing here reads
    values = {name: bindparam(name, type_=t.c[name].type) for name in names}
    return sql_insert(t).inline().values(values)


def _with_defaults(model: type[Base], values: dict[str, Any]) -> dict[str, Any]:
    """The columns' Python-side defaults (new_id, utcnow, list...) for the columns left out."""
    for column in table(model).columns:
        default = column.default
        if column.key in values or default is None:
            continue
        if default.is_scalar:
            values[column.key] = default.arg  # type: ignore[attr-defined]
        elif default.is_callable:
            values[column.key] = default.arg(None)  # type: ignore[attr-defined]
        else:
            raise ValueError(f"{column.key}: only scalar and callable defaults are filled in")
    return values


@cache
def _delete(model: type[Base], names: tuple[str, ...], nulls: tuple[str, ...]) -> Delete:
    t = table(model)
    return sql_delete(t).where(_match(t, names, nulls))


def _split(where: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...], dict[str, Any]]:
    """Column names compared by value, those that must be NULL, and the bound values."""
    if not where:
        raise ValueError("a statement on every row: give at least one column to match")
    names = tuple(sorted(k for k, v in where.items() if v is not None))
    nulls = tuple(sorted(k for k, v in where.items() if v is None))
    return names, nulls, {f"w_{k}": where[k] for k in names}


def fetch(tx: Transaction, model: type[M], **where: Any) -> M | None:
    """The one row matching `where` (a key or unique columns), or None; None means IS NULL."""
    names, nulls, params = _split(where)
    row = tx.execute(_select(model, names, nulls), params).first()
    return None if row is None else transient(model, row)


def transient(model: type[M], values: Mapping[Any, Any]) -> M:
    """A model instance holding `values`, in no session, for reading.

    The ORM's own constructor sets each attribute through its change tracking (five times the
    cost of the query here); a row read from the table needs none of it: the instance gets
    its state from the mapper and its values straight into its dict.
    """
    if not model.__mapper__.configured:  # the ORM's constructor would have seen to it
        configure_mappers()
    instance: M = model._sa_class_manager.new_instance()  # type: ignore[attr-defined]
    instance.__dict__.update(values)
    return instance


def update_row(tx: Transaction, model: type[Base], where: Mapping[str, Any], **values: Any) -> int:
    """UPDATE the rows matching `where` (None means IS NULL); returns how many changed.

    A value of INCREMENT adds one to the column's current value.
    """
    names, nulls, params = _split(where)
    sets = tuple(sorted(k for k, v in values.items() if v is not INCREMENT))
    increments = tuple(sorted(k for k, v in values.items() if v is INCREMENT))
    params.update({f"v_{k}": values[k] for k in sets})
    return tx.execute(_update(model, names, nulls, sets, increments), params).rowcount


def insert_row(tx: Transaction, model: type[Base], **values: Any) -> None:
    """INSERT one row; columns left out get their defaults."""
    values = _with_defaults(model, values)
    tx.execute(_insert(model, tuple(sorted(values))), values)


def delete_rows(tx: Transaction, model: type[Base], **where: Any) -> int:
    names, nulls, params = _split(where)
    return tx.execute(_delete(model, names, nulls), params).rowcount
