from django.contrib import admin
from django.urls import include, path

from gateway_project.api import api

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("", include("relay.urls")),
]
