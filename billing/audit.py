"""The audit trail: one entry per state change of a channel, an API key, a user, the prices or a user's quota,
naming who made it and the old and new values of what changed.

The ledger (billing.ledger) is the users' account of their money; this is the operators' record of who
changed what. An entry is written in the transaction of the change it records, so neither exists without
the other. Secrets never appear: a changed secret (a channel's key, a password hash) is recorded as
"changed". Callers pass the actor down: the signed-in user in the management API, admin and the console; a
System actor otherwise (commands, channel health, WeChat Pay's confirmations). The module that changes a
kind of object says what is recorded of it (a Subject: channels_app.channels.AUDITED,
billing.accounts.users.AUDITED, billing.accounts.api_keys.AUDITED, billing.pricing.AUDITED).

Concurrency: `tracked` locks the rows it watches before the change, so the old values it records are the
ones the change replaced, not what another request wrote meanwhile. Deletions read without a lock: deleting
a user deletes its keys first, and locking the user before them would invert the settlement's lock order
(key -> user, billing.quota). A change whose row another request deleted first ends in DoesNotExist or
Http404 (gateway_project.existing): it records nothing and, as without the audit, undoes nothing.
"""

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.db import models, transaction
from django.http import Http404, HttpRequest

from billing.models import AuditEntry, User

CHANGED = "changed"  # what a changed secret is recorded as


class System(StrEnum):
    """Actors that are not a user."""

    MANAGE_PY = "manage.py"  # a management command, or code run from the Django shell
    AUTO_DISABLE = "auto-disable"
    AUTO_ENABLE = "auto-enable"
    WECHAT_PAY = "wechat-pay"
    IMPORT = "import_oneapi"
    SIGN_UP = "sign-up"  # the credits of a new account (billing.accounts.invitations)


Actor = User | System


@dataclass(frozen=True)
class Subject:
    """One kind of audited object: its model, the fields an entry records and which of them are secret."""

    kind: str  # an AuditEntry.Kind
    model: type[models.Model]
    fields: tuple[str, ...]
    secret: frozenset[str] = frozenset()
    # (map field, entry) whose values are secrets under names that are not (a channel's header overrides):
    # recorded as fingerprints, so an entry shows which of them changed but never a value.
    secret_values: tuple[tuple[str, str], ...] = ()

    def values(self, row: models.Model) -> dict[str, Any]:
        found = {name: getattr(row, name) for name in self.fields}
        for name, entry in self.secret_values:
            mapping = found[name].get(entry) if isinstance(found[name], dict) else None
            if isinstance(mapping, dict):
                found[name] = {**found[name], entry: {key: fingerprint(value) for key, value in mapping.items()}}
        return found

    def stored(self, ids: list[int], lock: bool) -> dict[int, dict[str, Any]]:
        """The recorded values of the rows among `ids` that exist, by id; locked in id order with `lock`."""
        rows = self.model.objects.filter(pk__in=ids).order_by("pk")
        if lock:
            rows = rows.select_for_update()
        return {row.pk: self.values(row) for row in rows}

    def changes(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any]:
        """{field: [old, new]} for each field that differs; a map (prices, a channel's config) entry by entry,
        as `field[entry]`, so one changed price does not copy the whole table."""
        old, new = old or {}, new or {}
        found: dict[str, Any] = {}
        for name in self.fields:
            before, after = old.get(name), new.get(name)
            if before == after:
                continue
            if name in self.secret:
                found[name] = CHANGED
            elif isinstance(before, dict) and isinstance(after, dict):
                for entry in sorted(before.keys() | after.keys()):
                    if before.get(entry) != after.get(entry):
                        found[f"{name}[{entry}]"] = [before.get(entry), after.get(entry)]
            else:
                found[name] = [before, after]
        return found


def fingerprint(secret: object) -> str:
    """A short digest that tells one secret from another and gives none away."""
    return "sha256:" + hashlib.sha256(str(secret).encode()).hexdigest()[:12]


def record(actor: Actor, kind: str, object_id: int, action: str, changes: dict[str, Any]) -> None:
    """Write one entry; in the caller's transaction, which made the change."""
    AuditEntry.objects.create(
        actor_id=actor.pk if isinstance(actor, User) else None,
        actor_name=name_of(actor),
        object_type=kind,
        object_id=object_id,
        action=action,
        changes=changes,
    )


def name_of(actor: Actor) -> str:
    return actor.get_username() if isinstance(actor, User) else str(actor)


def created(actor: Actor, subject: Subject, row: models.Model) -> None:
    """The entry for a row just inserted, in the transaction that inserted it."""
    record(actor, subject.kind, row.pk, AuditEntry.Action.CREATE, subject.changes(None, subject.values(row)))


@contextmanager
def tracked(actor: Actor, subject: Subject, *ids: int, lock: bool = True) -> Iterator[None]:
    """Record what the block (one write: a save, an update, a delete) does to the rows `ids` of `subject`, all in
    one transaction: an entry for each row whose recorded values it changed, created or deleted. `lock=False`
    for a deletion (see the module)."""
    gone: Exception | None = None
    with transaction.atomic():
        before = subject.stored(list(ids), lock=lock)
        try:
            yield
        except (ObjectDoesNotExist, Http404) as missing:  # its row was deleted first: nothing changed here
            gone = missing
        else:
            after = subject.stored(list(ids), lock=False)
            for object_id in sorted(before.keys() | after.keys()):
                old, new = before.get(object_id), after.get(object_id)
                changes = subject.changes(old, new)
                if changes or new is None:
                    record(actor, subject.kind, object_id, _action(old, new), changes)
    if gone is not None:
        raise gone


def _action(old: dict | None, new: dict | None) -> str:
    if old is None:
        return AuditEntry.Action.CREATE
    return AuditEntry.Action.UPDATE if new is not None else AuditEntry.Action.DELETE


def quota_moved(actor: Actor, user_id: int, delta: int) -> int:
    """The entry for `delta` quota just added to the user (negative: taken); returns the new balance. Call it
    after the UPDATE that moved the quota, in its transaction: that UPDATE holds the user's row, so the balance
    read here is exactly what it left."""
    balance = User.objects.filter(pk=user_id).values_list("quota", flat=True).get()
    record(actor, AuditEntry.Kind.USER, user_id, AuditEntry.Action.QUOTA, {"quota": [balance - delta, balance]})
    return balance


class AuditedAdmin:
    """For the ModelAdmin of an audited model: adding, changing and deleting (one row, or the selected ones)
    write their entries, with the signed-in user as the actor. Mix it in first."""

    audit_subject: Subject

    def save_model(self, request: HttpRequest, obj: models.Model, form: Any, change: bool) -> None:
        if change:
            with tracked(request.user, self.audit_subject, obj.pk):
                super().save_model(request, obj, form, change)  # type: ignore[misc]  # ModelAdmin's, later in the MRO
            return
        with transaction.atomic():
            super().save_model(request, obj, form, change)  # type: ignore[misc]  # ModelAdmin's, later in the MRO
            created(request.user, self.audit_subject, obj)

    def delete_model(self, request: HttpRequest, obj: models.Model) -> None:
        with tracked(request.user, self.audit_subject, obj.pk, lock=False):
            super().delete_model(request, obj)  # type: ignore[misc]  # ModelAdmin's, later in the MRO

    def delete_queryset(self, request: HttpRequest, queryset: models.QuerySet) -> None:
        with tracked(request.user, self.audit_subject, *queryset.values_list("pk", flat=True), lock=False):
            super().delete_queryset(request, queryset)  # type: ignore[misc]  # ModelAdmin's, later in the MRO
