"""Task platform (also the channel type slug) -> its adaptor. Chat adaptors live in registry.py."""

from relay.adaptors.midjourney import MidjourneyAdaptor
from relay.adaptors.suno import SunoAdaptor
from relay.adaptors.task_base import TaskAdaptor

TASK_ADAPTORS: dict[str, TaskAdaptor] = {
    "midjourney": MidjourneyAdaptor(),
    "suno": SunoAdaptor(),
}


def task_adaptor(platform: str) -> TaskAdaptor:
    return TASK_ADAPTORS[platform]
