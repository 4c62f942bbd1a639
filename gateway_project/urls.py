from django.contrib import admin
from django.urls import include, path

from gateway_project.api import api
from relay.metrics import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("metrics", metrics_view),
    path("console/", include("billing.console.urls")),
    path("", include("relay.urls")),
    path("", include("tasks.urls")),
]
