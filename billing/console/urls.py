"""URLs of the user console, mounted at /console/."""

from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy
from django.views.generic import RedirectView

from billing.console import views

app_name = "console"

urlpatterns = [
    # Signing in is allauth's (/accounts/login/, with its two-factor step); the old address still leads there.
    path("login/", RedirectView.as_view(pattern_name="account_login", query_string=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(next_page=reverse_lazy("account_login")), name="logout"),
    path("account/", views.account, name="account"),
    path("invite/<str:code>/", views.invite, name="invite"),
    path("", views.home, name="home"),
    path("keys/", views.keys, name="keys"),
    path("keys/<int:key_id>/status", views.key_status, name="key-status"),
    path("keys/<int:key_id>/delete", views.key_delete, name="key-delete"),
    path("usage/", views.usage, name="usage"),
    path("usage.csv", views.usage_csv, name="usage-csv"),
    path("topup/", views.topup_page, name="topup"),
    path("topup/<str:out_trade_no>/", views.topup_order, name="topup-order"),
    path("topup/<str:out_trade_no>/status", views.topup_status, name="topup-status"),
    path("redeem/", views.redeem, name="redeem"),
]
