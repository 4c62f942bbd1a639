"""Add a channel from the command line."""

import argparse
import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from channels_app import channel_types, channels, overrides
from channels_app.models import KeyMode
from gateway_project.errors import describe


def names(value: str) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()]


def json_object(value: str) -> dict:
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError(_("must be a JSON object"))
    return parsed


class Command(BaseCommand):
    help = (
        "Add a channel: --type T --key K --models m1,m2 [--base-url U] [--priority N] [--weight N] [--group G] "
        "[--param-override JSON] [--header-override JSON]"
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--type", required=True, help=f"One of {', '.join(channel_types.slugs())}")
        parser.add_argument(
            "--key", required=True, help="The upstream API key, or several: one per line or a JSON list (encrypted)"
        )
        parser.add_argument("--key-mode", choices=KeyMode.values, default="random", help="How one of several is picked")
        parser.add_argument("--models", required=True, type=names, help="Comma-separated; a * suffix is a prefix")
        parser.add_argument("--base-url", default="", help="Default: the type's own host")
        parser.add_argument("--priority", type=int, default=0, help="Higher is tried first")
        parser.add_argument("--weight", type=int, default=1, help="Share of traffic within its priority")
        parser.add_argument("--group", type=names, default=["default"], help="Comma-separated groups it serves")
        parser.add_argument("--name", default="", help="Default: the type")
        parser.add_argument(
            "--param-override", type=json_object, help="Body fields to set (null removes), e.g. '{\"top_k\": 5}'"
        )
        parser.add_argument("--header-override", type=json_object, help='Headers to add, e.g. \'{"X-Team": "search"}\'')

    def handle(self, *args, **options) -> None:
        try:
            channel = channels.create_channel(
                type=options["type"],
                key=options["key"],
                models=options["models"],
                base_url=options["base_url"],
                priority=options["priority"],
                weight=options["weight"],
                groups=options["group"],
                name=options["name"],
                key_mode=options["key_mode"],
                config={
                    name: options[name]
                    for name in (overrides.PARAM_OVERRIDE, overrides.HEADER_OVERRIDE)
                    if options[name] is not None
                },
            )
        except ValidationError as invalid:
            raise CommandError(describe(invalid)) from None
        added = {
            "id": channel.pk,
            "name": channel.name,
            "type": channel.type,
            "models": ", ".join(channel.models),
            "groups": ", ".join(channel.groups),
        }
        self.stdout.write(_("added channel %(id)d %(name)r (%(type)s) for %(models)s in %(groups)s") % added)
