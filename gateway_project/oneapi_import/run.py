"""What every part of an import shares: the source's rows, the report, and the one way a row is written."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db import models
from django.utils.translation import gettext as _

from billing import audit
from billing.accounts import api_keys, users
from billing.audit import System
from billing.models import User
from channels_app import channels
from gateway_project.oneapi_import.source import TABLES, Source, detect_flavour

# What the audit trail records of the tables an import writes (redemption codes are not audited).
AUDITED = {"users": users.AUDITED, "tokens": api_keys.AUDITED, "channels": channels.AUDITED}


@dataclass
class Tally:
    created: int = 0
    updated: int = 0
    kept: int = 0
    skipped: int = 0

    def line(self, table: str, dry_run: bool) -> str:
        counts = {"table": table, "created": self.created, "updated": self.updated, "kept": self.kept}
        if dry_run:
            line = _(
                "%(table)s: %(created)d would be created, %(updated)d would be updated, %(kept)d kept,"
                " %(skipped)d skipped"
            )
        else:
            line = _("%(table)s: %(created)d created, %(updated)d updated, %(kept)d kept, %(skipped)d skipped")
        return line % {**counts, "skipped": self.skipped}


@dataclass
class Report:
    flavour: str
    dry_run: bool
    tallies: dict[str, Tally] = field(default_factory=lambda: {table: Tally() for table in TABLES})
    notes: list[str] = field(default_factory=list)  # skipped rows and lossy conversions: always shown
    actions: list[str] = field(default_factory=list)  # one line per write (or planned write)

    def summary(self) -> list[str]:
        return [self.tallies[table].line(table, self.dry_run) for table in TABLES]


class Run:
    """One import from `source`: what the parts (gateway_project.oneapi_import.importer) read and write through."""

    def __init__(self, source: Source, *, dry_run: bool = False, update: bool = False, flavour: str = "auto"):
        self.source = source
        self.dry_run = dry_run
        self.update = update
        self.data = {table: source.rows(table) for table in TABLES}
        if flavour == "auto":
            flavour = detect_flavour(self.data["channels"][0] | self.data["tokens"][0])
        self.report = Report(flavour, dry_run)
        self.users_by_source_id: dict[int, User] = {}

    def note(self, message: str) -> None:
        self.report.notes.append(message)

    def live_rows(self, table: str) -> Iterator[dict]:
        """Rows not soft-deleted (new-api keeps deleted users, keys and codes with deleted_at set)."""
        for row in self.data[table][1]:
            if row.get("deleted_at"):
                self.report.tallies[table].skipped += 1
                continue
            yield row

    def sync(self, table: str, existing: models.Model | None, make: Callable[[], Any], values: dict, label: str):
        """Create the row, or bring an existing one to `values` when updating; returns the (planned) row."""
        tally = self.report.tallies[table]
        if existing is None:
            row = make()
            for name, value in values.items():
                setattr(row, name, value)
            tally.created += 1
            self.report.actions.append(f"create {label}")
            if not self.dry_run:
                row.save()
                if table in AUDITED:
                    audit.created(System.IMPORT, AUDITED[table], row)
            return row
        changed = [name for name, value in values.items() if _current(existing, name) != value]
        if not changed or not self.update:
            tally.kept += 1
            return existing
        for name in changed:
            setattr(existing, name, values[name])
        tally.updated += 1
        self.report.actions.append(f"update {label}: {', '.join(changed)}")
        if not self.dry_run:
            self.save_audited(table, existing, ["key_encrypted" if name == "key" else name for name in changed])
        return existing

    @staticmethod
    def save_audited(table: str, row: models.Model, fields: list[str]) -> None:
        if table not in AUDITED:
            row.save(update_fields=fields)
            return
        with audit.tracked(System.IMPORT, AUDITED[table], row.pk):
            row.save(update_fields=fields)


def rows_by(model: type[models.Model], field_name: str, values: list[str]) -> dict[str, Any]:
    """Rows whose `field_name` is one of `values`, by that value; in chunks, as SQLite caps query parameters."""
    found = {}
    for start in range(0, len(values), 500):
        for row in model.objects.filter(**{f"{field_name}__in": values[start : start + 500]}):
            found[getattr(row, field_name)] = row
    return found


def _current(row: models.Model, name: str) -> object:
    try:
        return getattr(row, name)
    except ValueError:  # a channel key that no longer decrypts: treat it as different
        return None
