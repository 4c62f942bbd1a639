"""Streams arriving at random (open loop), as many independent apps would send them.

The harness's S3 runs each user's streams back to back, so streams that start together end together and
start again together (RESULTS.md, "The collector: what held the first byte back at 200 streams"). Here
streams start at exponentially distributed intervals whatever the others do, at the rate that keeps
CONCURRENCY of them in flight on average (Little's law with the mock's stream length), on keep-alive
connections taken from a pool. It reuses the harness's
HTTP client (load/client.py), so TTFB is measured the same way. Prints one JSON object.
    python bench/open_streams.py URL KEY [--concurrency 200] [--duration 20] [--stream-seconds 1.1]
"""

import argparse
import asyncio
import json
import os
import random
import sys
import urllib.parse

sys.path.insert(0, os.path.join(os.environ.get("BENCH_HARNESS", "../shared/bench"), "load"))
import client  # noqa: E402  (the harness's load client)

BODY = (
    b'{"model":"bench-stream","stream":true,"stream_options":{"include_usage":true},'
    b'"messages":[{"role":"user","content":"Say hello."}]}'
)


async def one_stream(pool: list, host: str, port: int, request: bytes, records: list) -> None:
    loop = asyncio.get_running_loop()
    conn = pool.pop() if pool else await client.connect(loop, host, port)
    record = client.Rec(True)
    try:
        await asyncio.wait_for(conn.request(request, record), 30)
    except Exception as exc:  # a timeout or a dropped connection is counted, not raised
        record.error = type(exc).__name__
    records.append(record)
    if record.error is None and record.ka and not conn.closed:
        pool.append(conn)
    else:
        conn.close()


async def run(args: argparse.Namespace) -> dict:
    url = urllib.parse.urlsplit(args.url)
    request = client.build_request(args.url, args.key, BODY, [])
    rate = args.concurrency / args.stream_seconds
    pool, records, running = [], [], set()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.duration
    while loop.time() < deadline:
        task = asyncio.ensure_future(one_stream(pool, url.hostname, url.port, request, records))
        running.add(task)
        task.add_done_callback(running.discard)
        await asyncio.sleep(random.expovariate(rate))
    await asyncio.gather(*running)
    # The first seconds fill the pipeline: keep the streams that started after one stream length.
    first = min(record.t0 for record in records) + args.stream_seconds
    ok = [r for r in records if r.error is None and r.status == 200 and r.done and r.t0 >= first]
    return {
        "concurrency": args.concurrency,
        "streams": len(records),
        "failed": sum(1 for r in records if r.error is not None or r.status != 200 or not r.done),
        "ttfb_ms": client.dist_ms([r.ttfb - r.t0 for r in ok]),
        "total_ms": client.dist_ms([r.t_end - r.t0 for r in ok]),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("key")
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--stream-seconds", type=float, default=1.1, help="the mock's stream length")
    args = parser.parse_args()
    if client.uvloop is not None:
        client.uvloop.install()
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
