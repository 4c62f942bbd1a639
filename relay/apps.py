from django.apps import AppConfig


class RelayConfig(AppConfig):
    name = "relay"

    def ready(self) -> None:
        from relay.adaptors.registry import register_channel_types

        register_channel_types()
