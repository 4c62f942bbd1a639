"""Add (or, with a negative DELTA, remove) quota from a user, writing a manage log."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from billing.accounts import users
from billing.accounts.access import find_user
from billing.models import User
from billing.quota import QuotaExceeded
from gateway_project.errors import describe


class Command(BaseCommand):
    help = "Change USERNAME's quota by DELTA (negative removes; never below zero) and log it."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("delta", type=int, help="Quota to add, e.g. 500000 (= $1) or -1000")
        parser.add_argument("--reason", default="", help="Why, for the log")

    def handle(self, *args, username: str, delta: int, reason: str, **options) -> None:
        try:
            user = find_user(username)
            now = users.adjust_quota(user, delta, reason or "manage.py user_quota")
        except User.DoesNotExist as missing:
            raise CommandError(str(missing)) from None
        except ValidationError as invalid:
            raise CommandError(describe(invalid)) from None
        except QuotaExceeded as refused:
            raise CommandError(str(refused)) from None
        self.stdout.write(_("%(user)s: quota %(delta)+d, now %(now)d") % {"user": username, "delta": delta, "now": now})
