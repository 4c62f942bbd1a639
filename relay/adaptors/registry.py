"""Channel type slug -> adaptor. Adding a provider: one module, its tests, one line here."""

from relay.adaptors.azure import AzureAdaptor
from relay.adaptors.base import Adaptor
from relay.adaptors.custom import CustomAdaptor
from relay.adaptors.lingyi import LingyiAdaptor
from relay.adaptors.openai import OpenAIAdaptor

ADAPTORS: dict[str, Adaptor] = {
    "openai": OpenAIAdaptor(),
    "azure": AzureAdaptor(),
    "custom": CustomAdaptor(),
    "lingyi": LingyiAdaptor(),
}


def adaptor_for(channel_type: str) -> Adaptor | None:
    return ADAPTORS.get(channel_type)
