from django.contrib import admin
from django.urls import include, path, re_path
from django.utils.translation import gettext_lazy as _

from billing.admin import key_pages_at_their_old_path
from gateway_project.admin_dashboard import dashboard
from gateway_project.admin_tools import admin_sign_in
from gateway_project.api import api
from gateway_project.home import home
from relay.metrics import metrics_view

# The admin's title names the product, in the reader's language, not "Django administration".
admin.site.site_header = _("LLM Gateway administration")
admin.site.site_title = _("LLM Gateway admin")

urlpatterns = [
    path("", home, name="home"),
    re_path(r"^admin/billing/token/(?P<rest>.*)$", key_pages_at_their_old_path),
    path("admin/dashboard/", admin.site.admin_view(dashboard), name="admin_dashboard"),
    path("admin/login/", admin_sign_in),
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("metrics", metrics_view),
    path("console/", include("billing.console.urls")),
    path("accounts/", include("allauth.urls")),
    path("i18n/", include("django.conf.urls.i18n")),  # set_language: the console's language switch
    path("", include("gateway_project.relay_urls")),
]
