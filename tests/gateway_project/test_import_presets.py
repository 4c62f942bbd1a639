"""import_oneapi and the provider presets: each one-api / new-api type number of DeepSeek, Kimi, Qwen, Doubao,
SiliconFlow, OpenRouter, xAI, Mistral and Groq becomes its preset, the source's host kept with the API root
the preset calls; new-api's param_override and header_override come along when this gateway accepts them."""

from pathlib import Path

import pytest

from tests.gateway_project.test_import_oneapi import NEW_API, ONE_API, channel, run, sqlite_source

pytestmark = pytest.mark.django_db(transaction=True)

NEW_API_WITH_OVERRIDES = {**NEW_API, "channels": NEW_API["channels"] + " param_override:text header_override:text"}
# flavour -> type number -> (our type, the source's base URL, the base URL imported)
PRESET_NUMBERS = {
    "one-api": {
        36: ("deepseek", "", ""),
        25: ("moonshot", "https://api.moonshot.cn", "https://api.moonshot.cn"),
        17: ("qwen", "https://dashscope.aliyuncs.com", "https://dashscope.aliyuncs.com/compatible-mode/v1"),
        49: ("qwen", "", ""),
        40: ("doubao", "https://ark.cn-beijing.volces.com", "https://ark.cn-beijing.volces.com/api/v3"),
        44: ("siliconflow", "", ""),
        20: ("openrouter", "https://openrouter.ai/api", "https://openrouter.ai/api"),
        45: ("xai", "", ""),
        28: ("mistral", "", ""),
        29: ("groq", "https://api.groq.com/openai", "https://api.groq.com/openai"),
    },
    "new-api": {
        43: ("deepseek", "https://api.deepseek.com", "https://api.deepseek.com"),
        25: ("moonshot", "", ""),
        17: ("qwen", "", ""),
        45: ("doubao", "https://ark.cn-beijing.volces.com", "https://ark.cn-beijing.volces.com/api/v3"),
        40: ("siliconflow", "https://api.siliconflow.cn", "https://api.siliconflow.cn"),
        20: ("openrouter", "", ""),
        48: ("xai", "https://api.x.ai", "https://api.x.ai"),
        42: ("mistral", "https://api.mistral.ai", "https://api.mistral.ai"),
    },
}


def source(tmp_path: Path, flavour: str, channels: list[dict]) -> str:
    layout = ONE_API if flavour == "one-api" else NEW_API_WITH_OVERRIDES
    path = sqlite_source(tmp_path / f"{flavour}.db", layout, {"channels": channels})
    return path if flavour == "one-api" else f"sqlite://{path}"


@pytest.mark.parametrize("flavour", list(PRESET_NUMBERS))
def test_each_presets_type_number_imports_as_the_preset(tmp_path, flavour):
    numbers = PRESET_NUMBERS[flavour]
    rows = [
        {"id": number, "type": number, "name": slug, "key": f"sk-{number}", "models": "m", "group": "default",
         "status": 1, "base_url": base_url}
        for number, (slug, base_url, _) in numbers.items()
    ]  # fmt: skip
    run(source(tmp_path, flavour, rows), "--flavour", flavour)
    imported = {number: (channel(number).type, channel(number).base_url) for number in numbers}
    assert imported == {number: (slug, kept) for number, (slug, _, kept) in numbers.items()}


def test_new_apis_overrides_come_along_and_a_forbidden_one_is_dropped_with_a_note(tmp_path):
    rows = [
        {"id": 1, "type": 43, "name": "deepseek", "key": "sk-1", "models": "deepseek-chat", "status": 1,
         "param_override": '{"temperature": 0.3, "thinking.type": "enabled"}',
         "header_override": '{"X-Team": "search"}'},
        {"id": 2, "type": 43, "name": "stolen", "key": "sk-2", "models": "deepseek-chat", "status": 1,
         "param_override": "not json", "header_override": '{"Authorization": "Bearer other"}'},
    ]  # fmt: skip
    printed = run(source(tmp_path, "new-api", rows))
    assert channel(1).config["param_override"] == {"temperature": 0.3, "thinking.type": "enabled"}
    assert channel(1).config["header_override"] == {"X-Team": "search"}
    assert "param_override" not in channel(2).config and "header_override" not in channel(2).config
    assert "channel #2 'stolen' (type 43): param_override is not a JSON object: dropped" in printed
    assert "header_override dropped: header_override cannot set Authorization" in printed
    assert "Bearer other" not in printed
