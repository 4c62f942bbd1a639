from django.apps import AppConfig


class TasksConfig(AppConfig):
    name = "tasks"
    verbose_name = "Asynchronous tasks"

    def ready(self) -> None:
        from tasks.adaptors.registry import register_channel_types

        register_channel_types()
