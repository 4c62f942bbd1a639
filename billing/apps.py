from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = _("Billing: users, keys, prices and logs")

    def ready(self) -> None:
        from billing.accounts import signals, signup  # noqa: F401
