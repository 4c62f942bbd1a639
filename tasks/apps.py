from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TasksConfig(AppConfig):
    name = "tasks"
    verbose_name = _("Asynchronous tasks")

    def ready(self) -> None:
        from tasks.adaptors.registry import register_channel_types

        register_channel_types()
