"""ASGI entry point: Channels' ProtocolTypeRouter; relay paths go to a middleware-free Django handler."""

import gc
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_project.settings")

import django  # noqa: E402

django.setup(set_prefix=False)

from channels.routing import ProtocolTypeRouter  # noqa: E402

from gateway_project.asgi_handlers import (  # noqa: E402
    BodyLimit,
    Lifespan,
    PathRouter,
    RelayCors,
    RelayHandler,
    SiteHandler,
)
from tasks import embedded  # noqa: E402

application = ProtocolTypeRouter(
    {"http": RelayCors(BodyLimit(PathRouter(relay=RelayHandler(), site=SiteHandler()))), "lifespan": Lifespan()}
)

# What start-up built lives as long as the process: keep the collector from walking it again and again
# (a full collection took 160 ms with it, 27 ms without).
gc.collect()
gc.freeze()
# A young collection after 20,000 net new objects instead of 700: a request's objects are freed by reference
# counting (tests/gateway_project/test_reference_cycles.py), so frequent young passes found next to nothing and only
# promoted the objects of requests in flight into the old generation, whose full passes then stopped the process.
# At 200 concurrent streams the first byte's p99 went from 182-258 to 129-136 ms (bench/RESULTS.md).
gc.set_threshold(20_000, 10, 10)
embedded.start()
