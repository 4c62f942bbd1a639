"""Messages requests shaped like Claude Code's: system blocks with cache_control, tools with JSON Schemas,
thinking, metadata.user_id, and a history with thinking, tool_use and tool_result rounds.

Tests take a fresh copy (`claude_code_request()`), so no test sees another's changes.
"""

import copy

MODEL = "claude-sonnet-4-5-20250929"
# A 1x1 transparent PNG.
PNG_BASE64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
USER_ID = (
    "user_8f14e45fceea167a5a36dedd4bea2543b1f0e8c4d1a0e5c7f6b2a9d3e8c1f0a2"
    "_account_0c1d2e3f-4a5b-6c7d-8e9f-0a1b2c3d4e5f_session_9a8b7c6d-5e4f-3a2b-1c0d-9e8f7a6b5c4d"
)
CACHED = {"type": "ephemeral"}

SYSTEM_BLOCKS = [
    {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.", "cache_control": CACHED},
    {
        "type": "text",
        "text": "You are an interactive CLI tool that helps users with software engineering tasks. "
        "Use the tools available to you to read, change and run code.",
        "cache_control": CACHED,
    },
]

BASH_TOOL = {
    "name": "Bash",
    "description": "Executes a given bash command in a persistent shell session.",
    "input_schema": {
        "type": "object",
        "properties": {
            "command": {"type": "string", "description": "The command to execute"},
            "timeout": {"type": "number", "description": "Optional timeout in milliseconds (max 600000)"},
            "description": {"type": "string", "description": "Clear, concise description of what it does"},
        },
        "required": ["command"],
        "additionalProperties": False,
        "$schema": "http://json-schema.org/draft-07/schema#",
    },
}
READ_TOOL = {
    "name": "Read",
    "description": "Reads a file from the local filesystem.",
    "input_schema": {
        "type": "object",
        "properties": {
            "file_path": {"type": "string", "description": "The absolute path to the file to read"},
            "offset": {"type": "number"},
            "limit": {"type": "number"},
        },
        "required": ["file_path"],
        "additionalProperties": False,
        "$schema": "http://json-schema.org/draft-07/schema#",
    },
}
EDIT_TOOL = {
    "name": "Edit",
    "description": "Performs exact string replacements in files.",
    "input_schema": {
        "type": "object",
        "properties": {
            "file_path": {"type": "string"},
            "old_string": {"type": "string"},
            "new_string": {"type": "string"},
            "replace_all": {"type": "boolean", "default": False},
        },
        "required": ["file_path", "old_string", "new_string"],
        "additionalProperties": False,
        "$schema": "http://json-schema.org/draft-07/schema#",
    },
    "cache_control": CACHED,
}
TOOLS = [BASH_TOOL, READ_TOOL, EDIT_TOOL]

FIRST_PROMPT = [
    {"type": "text", "text": "<system-reminder>\nThe working directory is /home/dev/app.\n</system-reminder>"},
    {"type": "text", "text": "Why does the test in tests/test_app.py fail?", "cache_control": CACHED},
]
READ_CALL = {"type": "tool_use", "id": "toolu_01Read", "name": "Read", "input": {"file_path": "/home/dev/app/t.py"}}
BASH_CALL = {"type": "tool_use", "id": "toolu_01Bash", "name": "Bash", "input": {"command": "pytest -q"}}
HISTORY = [
    {"role": "user", "content": FIRST_PROMPT},
    {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "I should read the test first.", "signature": "EqQBCkYIBxgCKkDsig"},
            {"type": "text", "text": "Let me look at the test."},
            READ_CALL,
        ],
    },
    {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01Read", "content": "def test_it():\n    assert 1 == 2\n"},
        ],
    },
    {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "EmwKAhgBEgy3va"}, BASH_CALL]},
    {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "toolu_01Bash",
                "is_error": True,
                "content": [
                    {"type": "text", "text": "FAILED tests/test_app.py::test_it"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_BASE64}},
                ],
            },
            {"type": "text", "text": "Fix it, please.", "cache_control": CACHED},
        ],
    },
]

CLAUDE_CODE_REQUEST = {
    "model": MODEL,
    "max_tokens": 32000,
    "system": SYSTEM_BLOCKS,
    "messages": HISTORY,
    "tools": TOOLS,
    "tool_choice": {"type": "auto"},
    "thinking": {"type": "enabled", "budget_tokens": 10000},
    "metadata": {"user_id": USER_ID},
    "temperature": 1,
    "stream": True,
}


def claude_code_request(**changes: object) -> dict:
    """A deep copy of CLAUDE_CODE_REQUEST with top-level fields replaced (a value of None removes one)."""
    request = copy.deepcopy(CLAUDE_CODE_REQUEST)
    for name, value in changes.items():
        if value is None:
            request.pop(name, None)
        else:
            request[name] = copy.deepcopy(value)
    return request
