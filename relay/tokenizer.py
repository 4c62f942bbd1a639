"""Local token counting with tiktoken, offline.

tiktoken would download its BPE files at first use; the `bpe-openai` wheel ships both files we need
(`bpe_openai/data/cl100k_base.tiktoken.gz` and `o200k_base.tiktoken.gz`), so we build the encodings
from those: same ranks, same regexes, no network.

An encoding is built when a request first needs an exact count (0.5-1.5 s; relay.endpoints.count_prompt
does that on a worker thread): an upstream that reported no usage, or a reservation too close to the quota
for the prompt's byte bound (`utf8_bytes`). A worker whose upstreams report usage never loads one, and
the others hold only the tables of the model families they count: about 100 MB for o200k_base and 80 MB
for cl100k_base.
"""

import base64
import contextlib
import ctypes
import gc
import gzip
import re
import threading
from collections.abc import Callable, Iterator
from importlib import resources

import orjson
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


_built: dict[str, tiktoken.Encoding] = {}
_building = threading.Lock()


def encoding(name: str) -> tiktoken.Encoding:
    built = _built.get(name)
    if built is None:
        with _building:  # two requests that both find it missing must not build it twice
            built = _built.get(name) or _build(name)
            _built[name] = built
    return built


def _build(name: str) -> tiktoken.Encoding:
    pattern, special = ENCODINGS[name]
    built = tiktoken.Encoding(name=name, pat_str=pattern, mergeable_ranks=_ranks(name), special_tokens=special)
    # tiktoken keeps this Python copy of the ranks only to pickle the encoding; its Rust core has its own.
    # Dropping it saves about 15 (cl100k) and 30 (o200k) MB per process.
    built._mergeable_ranks = {}
    _give_back_garbage()
    return built


def _give_back_garbage() -> None:
    """Return the parsing garbage to the system (glibc keeps freed heap otherwise)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def encoding_name(model: str) -> str:
    return "o200k_base" if model.startswith(O200K_PREFIXES) else "cl100k_base"


def encoding_for(model: str) -> tiktoken.Encoding:
    return encoding(encoding_name(model))


def is_ready(model: str) -> bool:
    """Whether counting for `model` can start at once (its encoding is built)."""
    return encoding_name(model) in _built


def count_text(model: str, text: str) -> int:
    if not text:
        return 0
    encoding = encoding_for(model)
    return sum(len(encoding.encode(segment, disallowed_special=())) for segment in segments(text))


SEGMENT_CHARS = 1 << 18
# A space or line break between two letters: both encodings' pre-tokenizers end a piece before it (a run of
# letters takes no whitespace after it, and the whitespace goes with the word that follows).
SEGMENT_CUT = re.compile(r"(?<=[^\W\d_])[ \n](?=[^\W\d_])")


def segments(text: str) -> Iterator[str]:
    """`text` in segments of about SEGMENT_CHARS, each counted on its own: tiktoken returns a list of every
    token (about 36 bytes each), so a 60 MB answer counted at once would take 400 MB. Segments are cut only
    where the pre-tokenizer cuts anyway (SEGMENT_CUT), so their tokens add up to the text's; a text without
    such a place is counted whole."""
    start = 0
    while len(text) - start > SEGMENT_CHARS and (cut := SEGMENT_CUT.search(text, start + SEGMENT_CHARS)):
        yield text[start : cut.start()]
        start = cut.start()
    yield text[start:]


Measure = Callable[[str], int]


class Tokens:
    """The exact measure of a text: its tokens in `model`'s encoding (built at the first count)."""

    def __init__(self, model: str) -> None:
        self.model = model

    def __call__(self, text: str) -> int:
        return count_text(self.model, text)


def utf8_bytes(text: str) -> int:
    """An upper bound of the exact measure, with no tokenizer: a byte-level BPE token covers at least one byte."""
    return len(text.encode())


def count_messages(messages: list, measure: Measure) -> int:
    """Prompt tokens of a chat request: 3 per message, +1 for a name, +3 for the reply primer;
    `measure` gives a text's tokens (Tokens) or their bound (utf8_bytes)."""
    total = 3
    for message in messages:
        if not isinstance(message, dict):
            continue
        total += 3
        for key, value in message.items():
            if isinstance(value, str):
                total += measure(value)
                if key == "name":
                    total += 1
            elif key == "content" and isinstance(value, list):
                total += _count_parts(measure, value)
            elif key == "tool_calls" and isinstance(value, list):
                total += measure(str(value))
    return total


def count_tools(body: dict, measure: Measure) -> int:
    """The tool definitions of a chat request (`tools`, or the older `functions`) as JSON: the model reads
    them as part of its prompt."""
    return sum(measure(orjson.dumps(body[name]).decode()) for name in ("tools", "functions") if body.get(name))


def _count_parts(measure: Measure, parts: list) -> int:
    """Text parts only: image parts are counted by relay.media (GET_MEDIA_TOKEN)."""
    return sum(
        measure(part["text"])
        for part in parts
        if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
    )
