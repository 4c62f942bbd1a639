"""Task platform (also the channel type slug) -> its adaptor. Chat adaptors live in relay.adaptors.registry."""

from tasks.adaptors.base import TaskAdaptor
from tasks.adaptors.midjourney import MidjourneyAdaptor
from tasks.adaptors.suno import SunoAdaptor

TASK_ADAPTORS: dict[str, TaskAdaptor] = {
    "midjourney": MidjourneyAdaptor(),
    "suno": SunoAdaptor(),
}


def task_adaptor(platform: str) -> TaskAdaptor:
    return TASK_ADAPTORS[platform]
