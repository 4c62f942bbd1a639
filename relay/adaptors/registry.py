"""Channel type slug -> adaptor. Adding a provider: one module, its tests, one line here.

The adaptors declare their channel types (relay.adaptors.base.Provider); RelayConfig.ready registers them in
channels_app.channel_types, in this order (the order admin and the API list them)."""

from channels_app import channel_types
from relay.adaptors.anthropic import AnthropicAdaptor
from relay.adaptors.azure import AzureAdaptor
from relay.adaptors.base import Adaptor
from relay.adaptors.bedrock import BedrockAdaptor
from relay.adaptors.cohere import CohereAdaptor
from relay.adaptors.custom import CustomAdaptor
from relay.adaptors.dify import DifyAdaptor
from relay.adaptors.gemini import GeminiAdaptor
from relay.adaptors.jina import JinaAdaptor
from relay.adaptors.lingyi import LingyiAdaptor
from relay.adaptors.ollama import OllamaAdaptor
from relay.adaptors.openai import OpenAIAdaptor
from relay.adaptors.presets import PRESET_ADAPTORS
from relay.adaptors.vertex import VertexAdaptor
from relay.adaptors.zhipu import ZhipuAdaptor

ADAPTORS: dict[str, Adaptor] = {
    "openai": OpenAIAdaptor(),
    "azure": AzureAdaptor(),
    "anthropic": AnthropicAdaptor(),
    "gemini": GeminiAdaptor(),
    "vertex": VertexAdaptor(),
    "zhipu": ZhipuAdaptor(),
    "ollama": OllamaAdaptor(),
    "lingyi": LingyiAdaptor(),
    "custom": CustomAdaptor(),
    "cohere": CohereAdaptor(),
    "jina": JinaAdaptor(),
    "dify": DifyAdaptor(),
    "bedrock": BedrockAdaptor(),
    **PRESET_ADAPTORS,
}


def adaptor_for(channel_type: str) -> Adaptor | None:
    return ADAPTORS.get(channel_type)


def register_channel_types() -> None:
    for adaptor in ADAPTORS.values():
        channel_types.register(adaptor.channel_type())
