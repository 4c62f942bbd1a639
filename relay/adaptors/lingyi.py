"""01.AI (LingYiWanWu): OpenAI-compatible, with its own default host."""

from channels_app.channel_types import both
from relay.adaptors.openai import OpenAIAdaptor


class LingyiAdaptor(OpenAIAdaptor):
    slug = "lingyi"
    label = "01.AI"
    old_types = (both(31),)
    default_base_url = "https://api.lingyiwanwu.com"
