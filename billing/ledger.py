"""The ledger: the one writer of log rows (billing.models.Log) and of the daily totals they move.

Every row is written here: the settlement's consume rows (billing.quota.settle_many), refunds, top-ups and
redemptions (billing.payments), manage rows (quota adjustments, channel health) and error rows. A consume row
adds to its day in the daily usage aggregate (billing.daily_usage) and a refund takes its charge off again,
in the transaction that inserts the row (the caller's, when it has one), so the aggregate cannot disagree
with the rows. Rows are only ever added; billing.log_cleanup deletes old request rows, whose totals the
aggregate keeps.
"""

from collections.abc import Sequence

from django.db import transaction

from billing import daily_usage, rows
from billing.models import Log


def write(log: Log) -> Log:
    """Insert one row and move the daily totals it counts in; returns it with its id."""
    with transaction.atomic(savepoint=False):
        log.save(force_insert=True)
        daily_usage.record([log])
    return log


def write_many(logs: Sequence[Log]) -> None:
    """Insert many rows with one statement (their ids are not read back) and move the daily totals: a
    settlement's batch, on the hot path."""
    with transaction.atomic(savepoint=False):
        rows.insert(Log, logs)
        daily_usage.record(logs)
