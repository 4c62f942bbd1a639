"""SQL_DSN accepts URLs and the Go form one-api/new-api operators already have; booleans and lists are strict."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from gateway_project.env import database_from_dsn, envbool, envlist


def test_postgres_url():
    db = database_from_dsn("postgres://gw:p%40ss@db.local:5433/gateway?sslmode=require")
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["USER"], db["PASSWORD"], db["HOST"], db["PORT"], db["NAME"]) == (
        "gw",
        "p@ss",
        "db.local",
        "5433",
        "gateway",
    )
    assert db["OPTIONS"]["sslmode"] == "require"


def test_mysql_url():
    db = database_from_dsn("mysql://root@127.0.0.1:3306/oneapi")
    assert db["ENGINE"] == "django.db.backends.mysql"
    assert (db["USER"], db["PASSWORD"], db["HOST"], db["PORT"], db["NAME"]) == (
        "root",
        "",
        "127.0.0.1",
        "3306",
        "oneapi",
    )
    assert db["OPTIONS"]["charset"] == "utf8mb4"


def test_go_form():
    db = database_from_dsn("oneapi:secret@tcp(mysql.internal:3307)/oneapi?parseTime=true&charset=utf8mb4")
    assert db["ENGINE"] == "django.db.backends.mysql"
    assert (db["USER"], db["PASSWORD"], db["HOST"], db["PORT"], db["NAME"]) == (
        "oneapi",
        "secret",
        "mysql.internal",
        "3307",
        "oneapi",
    )


def test_go_form_without_port_defaults_to_3306():
    assert database_from_dsn("root:@tcp(localhost)/db")["PORT"] == "3306"


def test_unknown_scheme_is_refused():
    with pytest.raises(ImproperlyConfigured):
        database_from_dsn("oracle://x@y/z")


def test_booleans_accept_only_true_or_false(monkeypatch):
    monkeypatch.setenv("X_FLAG", "TRUE")
    assert envbool("X_FLAG", False) is True
    monkeypatch.setenv("X_FLAG", "yes")
    with pytest.raises(ImproperlyConfigured):
        envbool("X_FLAG", False)


def test_a_list_takes_only_known_names_and_may_be_empty(monkeypatch):
    known = ("X-Session-Id", "prompt_cache_key")
    assert envlist("X_SOURCES", known, allowed=known) == known
    monkeypatch.setenv("X_SOURCES", " prompt_cache_key , ")
    assert envlist("X_SOURCES", known, allowed=known) == ("prompt_cache_key",)
    monkeypatch.setenv("X_SOURCES", "")
    assert envlist("X_SOURCES", known, allowed=known) == ()
    monkeypatch.setenv("X_SOURCES", "prompt_cache_key,cookie")
    with pytest.raises(ImproperlyConfigured, match="cookie"):
        envlist("X_SOURCES", known, allowed=known)
