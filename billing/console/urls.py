"""URLs of the user console, mounted at /console/."""

from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from billing.console import views

app_name = "console"

urlpatterns = [
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="console/login.html", redirect_authenticated_user=True, next_page=reverse_lazy("console:home")
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(next_page=reverse_lazy("console:login")), name="logout"),
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
