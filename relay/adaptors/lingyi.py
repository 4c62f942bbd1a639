"""01.AI (LingYiWanWu): OpenAI-compatible, with its own default host."""

from relay.adaptors.openai import OpenAIAdaptor


class LingyiAdaptor(OpenAIAdaptor):
    slug = "lingyi"
    default_base_url = "https://api.lingyiwanwu.com"
