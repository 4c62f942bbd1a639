from django.urls import path, re_path

from relay import views

urlpatterns = [
    path("v1/chat/completions", views.chat_completions),
    path("v1/messages", views.messages),
    path("v1/messages/count_tokens", views.count_tokens),
    path("v1/responses", views.responses),
    path("v1/responses/input_tokens", views.response_input_tokens),
    path("v1/responses/<str:response_id>", views.stored_response),
    path("v1/responses/<str:response_id>/cancel", views.cancel_response),
    path("v1/responses/<str:response_id>/input_items", views.response_input_items),
    path("v1/completions", views.completions),
    path("v1/embeddings", views.embeddings),
    path("v1/engines/<str:model>/embeddings", views.embeddings),
    path("v1/moderations", views.moderations),
    path("v1/rerank", views.rerank),
    path("v1/images/generations", views.images),
    path("v1/audio/speech", views.speech),
    path("v1/audio/transcriptions", views.transcriptions),
    path("v1/audio/translations", views.transcriptions),
    # Gemini's native API: `models/{model}:{method}` before OpenAI's `v1/models/<path:model>`, which would take it.
    re_path(r"^(?P<version>v1beta|v1)/models/(?P<model>.+):(?P<method>[A-Za-z]+)$", views.gemini_method),
    path("v1beta/models", views.list_models),
    path("v1beta/models/<path:model>", views.retrieve_model),
    re_path(r"^v1beta/", views.gemini_not_found),
    path("v1/models", views.list_models),
    path("v1/models/<path:model>", views.retrieve_model),
    path("v1/dashboard/billing/subscription", views.billing_subscription),
    path("dashboard/billing/subscription", views.billing_subscription),
    path("v1/dashboard/billing/usage", views.billing_usage),
    path("dashboard/billing/usage", views.billing_usage),
    re_path(
        r"^v1/(images/edits|images/variations|files|fine-tunes|fine_tuning|assistants|threads|batches)",
        views.not_implemented,
    ),
    re_path(r"^v1/", views.not_found),
]
