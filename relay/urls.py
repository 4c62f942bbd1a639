from django.urls import path, re_path

from relay import views

urlpatterns = [
    path("v1/chat/completions", views.chat_completions),
    path("v1/models", views.list_models),
    re_path(r"^v1/", views.not_found),
]
