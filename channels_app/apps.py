from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ChannelsAppConfig(AppConfig):
    name = "channels_app"
    verbose_name = _("Channels")

    def ready(self) -> None:
        from billing import quota
        from channels_app import counters, signals  # noqa: F401

        quota.channels_charged.connect(counters.add_used_quota, dispatch_uid="channels_app.counters")
