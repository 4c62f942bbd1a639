"""Channel type slug -> adaptor. Adding a provider: one module, its tests, one line here."""

from relay.adaptors.anthropic import AnthropicAdaptor
from relay.adaptors.azure import AzureAdaptor
from relay.adaptors.base import Adaptor
from relay.adaptors.custom import CustomAdaptor
from relay.adaptors.gemini import GeminiAdaptor
from relay.adaptors.lingyi import LingyiAdaptor
from relay.adaptors.openai import OpenAIAdaptor

ADAPTORS: dict[str, Adaptor] = {
    "openai": OpenAIAdaptor(),
    "azure": AzureAdaptor(),
    "custom": CustomAdaptor(),
    "lingyi": LingyiAdaptor(),
    "anthropic": AnthropicAdaptor(),
    "gemini": GeminiAdaptor(),
}


def adaptor_for(channel_type: str) -> Adaptor | None:
    return ADAPTORS.get(channel_type)
