"""Server-sent events: reading upstream streams and framing ours. Shared by every adaptor."""

from collections.abc import AsyncIterator

DONE = b"[DONE]"


async def data_payloads(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Yield the payload of each `data:` line; skip comments, event/id/retry lines and blank lines.

    A line that is a bare JSON object is a payload too: Ollama and Cohere stream newline-delimited JSON
    without SSE framing, and no SSE stream starts a line with `{` (it would be a field name).
    """
    pending = b""
    async for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            payload = _payload(line)
            if payload is not None:
                yield payload
    payload = _payload(pending)
    if payload is not None:
        yield payload


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


DONE_FRAME = frame(DONE)
