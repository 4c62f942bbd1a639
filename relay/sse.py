"""Server-sent events: reading upstream streams and framing ours. Shared by every adaptor."""

from collections.abc import AsyncIterator

DONE = b"[DONE]"


async def data_payloads(chunks: AsyncIterator[bytes]) -> AsyncIterator[list[bytes]]:
    """Yield, for each read of the upstream that completes lines, the payloads of its `data:` lines (never an
    empty list); skip comments, event/id/retry lines and blank lines. Payloads that arrived together stay
    together, so the relay can pass them on in one write.

    A line that is a bare JSON object is a payload too: Ollama and Cohere stream newline-delimited JSON
    without SSE framing, and no SSE stream starts a line with `{` (it would be a field name).
    """
    pending: list[bytes] = []  # the start of a line that spans chunks; joined once, when it ends
    async for chunk in chunks:
        if b"\n" not in chunk:
            pending.append(chunk)  # growing a bytes object instead would copy a long line quadratically
            continue
        *lines, rest = chunk.split(b"\n")
        if pending:
            lines[0] = b"".join([*pending, lines[0]])
            pending.clear()
        if rest:
            pending.append(rest)
        payloads = [payload for payload in map(_payload, lines) if payload is not None]
        if payloads:
            yield payloads
    payload = _payload(b"".join(pending))
    if payload is not None:
        yield [payload]


def _payload(line: bytes) -> bytes | None:
    line = line.rstrip(b"\r")
    if line.startswith(b"{") and line.endswith(b"}"):
        return line
    if not line.startswith(b"data:"):
        return None
    payload = line[5:].strip()
    return payload or None


def frame(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


def frames(payloads: list[bytes]) -> bytes:
    return b"".join(map(frame, payloads))


DONE_FRAME = frame(DONE)
