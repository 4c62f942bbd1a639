"""Task platform (also the channel type slug) -> its adaptor. Chat adaptors live in relay.adaptors.registry;
TasksConfig.ready registers these types after the relay's."""

from channels_app import channel_types
from tasks.adaptors.base import TaskAdaptor
from tasks.adaptors.midjourney import MidjourneyAdaptor
from tasks.adaptors.suno import SunoAdaptor

TASK_ADAPTORS: dict[str, TaskAdaptor] = {
    "midjourney": MidjourneyAdaptor(),
    "suno": SunoAdaptor(),
}


def task_adaptor(platform: str) -> TaskAdaptor:
    return TASK_ADAPTORS[platform]


def register_channel_types() -> None:
    for adaptor in TASK_ADAPTORS.values():
        channel_types.register(adaptor.channel_type())
