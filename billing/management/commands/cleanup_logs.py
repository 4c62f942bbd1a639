"""Delete old request logs in small batches; the daily usage aggregate keeps their totals."""

from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from billing import log_cleanup


def positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = (
        "Delete consume and error logs created before DATE (local midnight in TIME_ZONE) in batches of "
        "--batch-size rows, each its own short transaction. Stats and the console chart keep their history."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--before", required=True, metavar="DATE", help="YYYY-MM-DD; that day's logs stay")
        parser.add_argument("--batch-size", type=positive, default=log_cleanup.BATCH_SIZE, metavar="N")
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be deleted")

    def handle(self, *args, before: str, batch_size: int, dry_run: bool, **options) -> None:
        try:
            day = date.fromisoformat(before)
        except ValueError:
            raise CommandError(_("--before needs a date like 2024-05-01, not %(given)r") % {"given": before}) from None
        cutoff = log_cleanup.start_of(day)
        if dry_run:
            count = log_cleanup.old_logs(cutoff).count()
            self.stdout.write(
                _("would delete %(count)d request logs created before %(day)s") % {"count": count, "day": day}
            )
        else:
            count = log_cleanup.delete_before(cutoff, batch_size)
            self.stdout.write(_("deleted %(count)d request logs created before %(day)s") % {"count": count, "day": day})
