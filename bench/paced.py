"""Paced single requests: one at a time with a pause between them, as one app with light traffic sends.

The harness's S2 sends the next request the moment the last answer arrives, so work done after an answer
(settlement, see billing.journal) still delays the next request on the same core; a pause shows what a
request waits for itself. Prints p50/p90/p99 of the latency seen by the client and of X-Gateway-Time-Ms (ours only).
    python bench/paced.py URL KEY [--requests 2000] [--pause-ms 10]
"""

import argparse
import statistics
import time

import httpx

BODY = b'{"model":"bench-fast","messages":[{"role":"user","content":"Say hello."}]}'


def percentiles(values: list[float]) -> str:
    cuts = statistics.quantiles(values, n=100)
    return f"p50 {cuts[49]:.2f} p90 {cuts[89]:.2f} p99 {cuts[98]:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("key")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--pause-ms", type=float, default=10)
    args = parser.parse_args()
    headers = {"Authorization": f"Bearer {args.key}", "Content-Type": "application/json"}
    latency, gateway = [], []
    with httpx.Client(headers=headers, timeout=10) as client:
        for _ in range(200):  # warm-up: caches, tokenizer, connections
            client.post(args.url, content=BODY).raise_for_status()
        for _ in range(args.requests):
            time.sleep(args.pause_ms / 1000)
            started = time.perf_counter()
            response = client.post(args.url, content=BODY)
            latency.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            if "X-Gateway-Time-Ms" in response.headers:  # not from the mock or the bare floor
                gateway.append(float(response.headers["X-Gateway-Time-Ms"]))
    own = f"; X-Gateway-Time-Ms {percentiles(gateway)}" if gateway else ""
    print(f"client latency {percentiles(latency)}{own}")


if __name__ == "__main__":
    main()
