"""ASGI entry point: Channels' ProtocolTypeRouter in front of Django's HTTP handler."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_project.settings")

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

application = ProtocolTypeRouter({"http": get_asgi_application()})

from django.conf import settings  # noqa: E402

from relay.tokenizer import warm_up  # noqa: E402
from tasks import embedded  # noqa: E402

warm_up()  # load the BPE tables now rather than inside the first request
if settings.TASK_RUNNER == "embedded":
    embedded.start()
