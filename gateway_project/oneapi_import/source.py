"""The one-api / new-api database being imported: opened read-only with a plain DB-API connection (sqlite3,
MySQLdb, psycopg), never through Django's connections, and read only with `SELECT *`, so whatever columns a
version has are what we see. Which of the two wrote it is recognised from the columns."""

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from gateway_project.env import GO_DSN, database_from_dsn

TABLES = ("users", "channels", "tokens", "options", "redemptions")
NEW_API_COLUMNS = {
    "auto_ban",
    "status_code_mapping",
    "test_model",
    "openai_organization",
    "other_info",
    "tag",
    "model_limits_enabled",
}


class SourceError(Exception):
    """The source database cannot be opened or read."""


@dataclass
class Source:
    connection: Any
    description: str
    tables: frozenset[str]
    quote: str = '"'

    def rows(self, table: str) -> tuple[set[str], list[dict]]:
        """(column names, rows as dicts); an absent table has neither."""
        if table not in self.tables:
            return set(), []
        cursor = self.connection.cursor()
        cursor.execute(f"SELECT * FROM {self.quote}{table}{self.quote}")  # table names are our constants
        names = [column[0].lower() for column in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        cursor.close()
        return set(names), rows

    def close(self) -> None:
        self.connection.close()


def open_source(dsn: str) -> Source:
    """A SQLite path (or sqlite:///path), a mysql:// or postgres:// URL, or a Go DSN user:pass@tcp(host)/db."""
    if dsn.startswith(("mysql://", "mariadb://", "postgres://", "postgresql://")) or GO_DSN.match(dsn):
        try:
            db = database_from_dsn(dsn)
        except ImproperlyConfigured as bad:
            raise SourceError(str(bad)) from None
        if db["ENGINE"].endswith("postgresql"):
            return _open_postgres(db)
        return _open_mysql(db)
    path = Path(dsn.removeprefix("sqlite://"))
    if not path.is_file():
        raise SourceError(f"no SQLite database at {path} (or give a mysql://, postgres:// or Go-form DSN)")
    try:
        connection = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
        names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as bad:
        raise SourceError(f"{path}: {bad}") from None
    return Source(connection, f"SQLite {path}", frozenset(names & set(TABLES)))


def _open_mysql(db: dict) -> Source:
    import MySQLdb

    try:
        connection = MySQLdb.connect(
            host=db["HOST"],
            port=int(db["PORT"] or 3306),
            user=db["USER"],
            password=db["PASSWORD"],
            database=db["NAME"],
            charset="utf8mb4",
        )
    except MySQLdb.Error as bad:
        raise SourceError(f"cannot connect to MySQL {db['HOST']}/{db['NAME']}: {bad}") from None
    cursor = connection.cursor()
    cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()")
    names = {row[0] for row in cursor.fetchall()}
    return Source(connection, f"MySQL {db['HOST']}/{db['NAME']}", frozenset(names & set(TABLES)), "`")


def _open_postgres(db: dict) -> Source:
    import psycopg

    options = {"sslmode": db["OPTIONS"]["sslmode"]} if "sslmode" in db["OPTIONS"] else {}
    try:
        connection = psycopg.connect(
            host=db["HOST"],
            port=db["PORT"] or 5432,
            user=db["USER"],
            password=db["PASSWORD"] or None,
            dbname=db["NAME"],
            **options,
        )
    except psycopg.Error as bad:
        raise SourceError(f"cannot connect to PostgreSQL {db['HOST']}/{db['NAME']}: {bad}") from None
    connection.read_only = True
    names = {
        row[0]
        for row in connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
    }
    return Source(connection, f"PostgreSQL {db['HOST']}/{db['NAME']}", frozenset(names & set(TABLES)))


def detect_flavour(columns: set[str]) -> str:
    return "new-api" if columns & NEW_API_COLUMNS else "one-api"
