"""Prometheus metrics of the relay, and the /metrics endpoint.

With several processes on one machine, set PROMETHEUS_MULTIPROC_DIR (an empty directory shared by
them, created before they start) so that /metrics on any of them reports the sum of all.
"""

import ipaddress
import os

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

from channels_app import routing

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
OVERHEAD_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25)

REQUESTS = Counter(
    "gateway_requests_total", "Relay requests by outcome", ["endpoint", "model", "channel", "status", "stream"]
)
LATENCY = Histogram(
    "gateway_request_seconds", "Time from request to the last byte", ["endpoint", "stream"], buckets=LATENCY_BUCKETS
)
FIRST_TOKEN = Histogram(
    "gateway_time_to_first_token_seconds", "Streams: time to the first chunk sent", buckets=LATENCY_BUCKETS
)
OVERHEAD = Histogram(
    "gateway_overhead_seconds", "Time spent inside the gateway, upstream excluded", buckets=OVERHEAD_BUCKETS
)
UPSTREAM_ERRORS = Counter("gateway_upstream_errors_total", "Failed upstream attempts", ["channel", "status"])
RETRIES = Counter("gateway_retries_total", "Attempts on another channel after a failure")
QUOTA = Counter("gateway_quota_charged_total", "Quota charged by settled requests", ["model"])
OTHER_MODEL = "other"


def model_label(model: str) -> str:
    """The `model` label: the channel entry that serves the model (its name, or the `prefix*` covering it),
    else `other`. A label per name a client makes up would grow /metrics without bound."""
    index = routing.loaded_index()
    return (index.listing_of(model) if index is not None else None) or OTHER_MODEL


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not allowed(request):
        return HttpResponse("forbidden\n", status=403, content_type="text/plain")
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)


def registry() -> CollectorRegistry:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import REGISTRY

        return REGISTRY
    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged)
    return merged


def allowed(request: HttpRequest) -> bool:
    """METRICS_TOKEN as a bearer token when it is set; otherwise only clients in METRICS_ALLOW_IPS."""
    if settings.METRICS_TOKEN:
        return request.headers.get("Authorization", "") == f"Bearer {settings.METRICS_TOKEN}"
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in settings.METRICS_ALLOW_IPS)
