"""Move a one-api / new-api deployment here: channels, users, API keys and prices from its database."""

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from gateway_project.oneapi_import.importer import Importer
from gateway_project.oneapi_import.source import SourceError, open_source


class Command(BaseCommand):
    help = (
        "Import channels, users, keys (sk- keys keep working) and price ratios from a one-api or new-api"
        " database. DSN: a SQLite path or sqlite:///path, mysql://..., postgres://..., or the Go form"
        " user:pass@tcp(host:3306)/db. Safe to re-run: what was imported before is kept (see --update)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("dsn", help="The one-api/new-api database (its SQL_DSN, or the SQLite file)")
        parser.add_argument("--dry-run", action="store_true", help="Print what would be done; write nothing")
        parser.add_argument(
            "--update",
            action="store_true",
            help="Also overwrite rows imported before (quota, status, keys, prices) with the source's values",
        )
        parser.add_argument(
            "--flavour",
            choices=["auto", "one-api", "new-api"],
            default="auto",
            help="Whose channel type numbers the source uses (default: recognised from its columns)",
        )

    def handle(self, *args, **options) -> None:
        try:
            source = open_source(options["dsn"])
        except SourceError as bad:
            raise CommandError(str(bad)) from None
        try:
            importer = Importer(
                source, dry_run=options["dry_run"], update=options["update"], flavour=options["flavour"]
            )
            report = importer.run()
        finally:
            source.close()
        dry = _(" -- dry run, nothing written") if report.dry_run else ""
        source_line = {"source": source.description, "flavour": report.flavour, "dry": dry}
        self.stdout.write(_("source: %(source)s (%(flavour)s layout)%(dry)s") % source_line)
        if report.dry_run or options["verbosity"] > 1:
            for action in report.actions:
                self.stdout.write(f"  {action}")
        for note in report.notes:
            self.stdout.write(self.style.WARNING(_("note: %(note)s") % {"note": note}))
        for line in report.summary():
            self.stdout.write(line)
