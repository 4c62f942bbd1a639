"""Writes to a row that another request may delete meanwhile: the loser of the race gets a 404, not a 500
and not a row brought back to life.

The database serialises the writes of one row: of two DELETEs the second matches nothing once the first
has committed, and an UPDATE of a deleted row matches nothing.
"""

from django.db import DatabaseError, models, transaction
from django.http import Http404


def save_existing(row: models.Model, **kwargs: object) -> None:
    """`row.save()` as an UPDATE only (a plain save of a deleted row would INSERT it again); DoesNotExist
    when the row is gone."""
    try:
        row.save(force_update=True, **kwargs)
    except DatabaseError as error:
        # Django raises the base class itself when the UPDATE matched no row; the driver's errors are subclasses.
        if type(error) is not DatabaseError:
            raise
        if transaction.get_connection().in_atomic_block:
            transaction.set_rollback(False)  # an UPDATE that matched nothing broke nothing: the caller's may go on
        if type(row).objects.filter(pk=row.pk).exists():
            raise
        raise type(row).DoesNotExist(f"{row._meta.verbose_name} {row.pk} was deleted meanwhile") from None


def delete_or_404(rows: models.QuerySet, pk: object) -> None:
    """Delete the row `pk` of `rows` (with what cascades from it); Http404 when there was none to delete."""
    _, deleted = rows.filter(pk=pk).delete()
    if not deleted.get(rows.model._meta.label):
        raise Http404(f"no {rows.model._meta.verbose_name} {pk}")
