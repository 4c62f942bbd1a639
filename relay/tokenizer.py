"""Local token counting with tiktoken, offline.

tiktoken would download its BPE files at first use; the `bpe-openai` wheel ships both files we need
(`bpe_openai/data/cl100k_base.tiktoken.gz` and `o200k_base.tiktoken.gz`), so we build the encodings
from those: same ranks, same regexes, no network.
"""

import base64
import contextlib
import ctypes
import gc
import gzip
from functools import cache
from importlib import resources

import tiktoken

CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|"""
    r"""\s+(?!\S)|\s"""
)
O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
ENCODINGS = {
    "cl100k_base": (CL100K_PATTERN, {"<|endoftext|>": 100257, "<|endofprompt|>": 100276}),
    "o200k_base": (O200K_PATTERN, {"<|endoftext|>": 199999, "<|endofprompt|>": 200018}),
}
O200K_PREFIXES = ("gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4")


def _ranks(name: str) -> dict[bytes, int]:
    data = resources.files("bpe_openai.data").joinpath(f"{name}.tiktoken.gz").read_bytes()
    ranks = {}
    for line in gzip.decompress(data).splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


@cache
def encoding(name: str) -> tiktoken.Encoding:
    pattern, special = ENCODINGS[name]
    built = tiktoken.Encoding(name=name, pat_str=pattern, mergeable_ranks=_ranks(name), special_tokens=special)
    # tiktoken keeps this Python copy of the ranks only to pickle the encoding; its Rust core has its own.
    # Dropping it saves about 15 (cl100k) and 30 (o200k) MB per process.
    built._mergeable_ranks = {}
    return built


def encoding_for(model: str) -> tiktoken.Encoding:
    return encoding("o200k_base" if model.startswith(O200K_PREFIXES) else "cl100k_base")


def count_text(model: str, text: str) -> int:
    if not text:
        return 0
    return len(encoding_for(model).encode(text, disallowed_special=()))


def count_messages(model: str, messages: list) -> int:
    """Prompt tokens of a chat request: 3 per message, +1 for a name, +3 for the reply primer."""
    enc = encoding_for(model)
    total = 3
    for message in messages:
        if not isinstance(message, dict):
            continue
        total += 3
        for key, value in message.items():
            if isinstance(value, str):
                total += len(enc.encode(value, disallowed_special=()))
                if key == "name":
                    total += 1
            elif key == "content" and isinstance(value, list):
                total += _count_parts(enc, value)
            elif key == "tool_calls" and isinstance(value, list):
                total += len(enc.encode(str(value), disallowed_special=()))
    return total


def _count_parts(enc: tiktoken.Encoding, parts: list) -> int:
    """Text parts only: image parts are counted by relay.media (GET_MEDIA_TOKEN)."""
    return sum(
        len(enc.encode(part["text"], disallowed_special=()))
        for part in parts
        if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
    )


def warm_up() -> None:
    """Build the encodings now rather than inside the first request, then hand the parsing garbage back
    to the system (glibc keeps freed heap otherwise)."""
    for name in ENCODINGS:
        encoding(name)
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
