"""`/`: where a browser lands, admin's "View site" included. A signed-in user goes on to the console; anyone
else gets the sign-in form, and operators (staff too, when signed in) the addresses they need."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_safe

from billing.accounts.forms import LoginForm


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated and not request.user.is_staff:
        return redirect("console:home")
    return render(request, "home.html", {"form": LoginForm(request=request), "base_url": openai_base_url(request)})


def openai_base_url(request: HttpRequest) -> str:
    """What apps put as their OpenAI base URL: SERVER_ADDRESS's when set (the gateway behind a proxy), else
    this request's scheme and host."""
    return f"{settings.SERVER_ADDRESS or request.build_absolute_uri('/').rstrip('/')}/v1"
