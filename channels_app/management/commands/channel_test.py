"""Test channels with one tiny real request each, as the management API's channel test does."""

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from channels_app.models import Channel
from relay.channel_test import probe_channels


class Command(BaseCommand):
    help = "Test channel ID, or every channel with --all; one line per channel; exit 1 if any failed."

    def add_arguments(self, parser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("channel_id", nargs="?", type=int)
        which.add_argument("--all", action="store_true", help="Every channel that is not disabled by hand")

    def handle(self, *args, channel_id: int | None, all: bool, **options) -> None:
        if all:
            found = list(Channel.objects.exclude(status=Channel.Status.DISABLED).order_by("id"))
        else:
            found = list(Channel.objects.filter(pk=channel_id))
            if not found:
                raise CommandError(_("no channel %(id)d") % {"id": channel_id})
        results = probe_channels(found)
        for channel, result in zip(found, results, strict=True):
            verdict = _("ok") if result.success else _("FAILED")
            line = {"id": channel.pk, "name": channel.name, "verdict": verdict, "message": result.message}
            self.stdout.write(_("channel %(id)d %(name)r: %(verdict)s: %(message)s") % line)
        failed = sum(not result.success for result in results)
        if failed:
            raise CommandError(_("%(failed)d of %(all)d channels failed") % {"failed": failed, "all": len(results)})
