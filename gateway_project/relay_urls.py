"""The URLs under the relay's prefixes (gateway_project.asgi_handlers.RELAY_PREFIXES). The relay's handler
resolves its requests here rather than walking the site's patterns first; the site's urls include it too."""

from django.urls import include, path

urlpatterns = [
    path("", include("relay.urls")),
    path("", include("tasks.urls")),
]
