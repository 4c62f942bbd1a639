"""Management API: users, the caller's profile and API keys. Rules live in billing.accounts.users and .api_keys.

The API keys' paths (/api/tokens), parameters (`token_id`), schemas and operation names keep one-api's word
"token": they are what new-api clients and the OpenAPI document already use."""

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from ninja import Router, Status
from ninja.pagination import paginate

from billing.accounts import api_keys, users
from billing.models import User
from billing.schemas import (
    MAX_PAGE,
    Detail,
    Id,
    Pagination,
    QuotaChange,
    TokenCreate,
    TokenCreated,
    TokenOut,
    TokenPatch,
    UserCreate,
    UserOut,
    UserPatch,
)
from gateway_project.auth import staff_only

users_router = Router(tags=["users"], auth=staff_only)
me_router = Router(tags=["users"])
tokens_router = Router(tags=["keys"])


@users_router.get("", response=list[UserOut])
@paginate(Pagination, max_limit=MAX_PAGE)
def list_users(request: HttpRequest, group: str | None = None):
    found = User.objects.order_by("id")
    return found.filter(group=group) if group else found


@users_router.post("", response={201: UserOut})
def create_user(request: HttpRequest, payload: UserCreate):
    return Status(201, users.create_user(**payload.model_dump(), actor=request.auth))


@users_router.get("/{int:user_id}", response=UserOut)
def get_user(request: HttpRequest, user_id: Id):
    return get_object_or_404(User, pk=user_id)


@users_router.patch("/{int:user_id}", response=UserOut)
def update_user(request: HttpRequest, user_id: Id, payload: UserPatch):
    user = get_object_or_404(User, pk=user_id)
    return users.update_user(user, payload.model_dump(exclude_unset=True), actor=request.auth)


@users_router.delete("/{int:user_id}", response={204: None})
def delete_user(request: HttpRequest, user_id: Id):
    if user_id == request.auth.pk:
        raise PermissionDenied(_("you cannot delete your own account"))
    users.delete_user(user_id, actor=request.auth)
    return Status(204, None)


@users_router.post("/{int:user_id}/quota", response={200: UserOut, 409: Detail})
def change_quota(request: HttpRequest, user_id: Id, payload: QuotaChange):
    user = get_object_or_404(User, pk=user_id)
    users.adjust_quota(user, payload.delta, payload.reason, actor=request.auth)
    return user


@me_router.get("", response=UserOut)
def me(request: HttpRequest):
    return request.auth


@tokens_router.get("", response=list[TokenOut])
@paginate(Pagination, max_limit=MAX_PAGE)
def list_tokens(request: HttpRequest, user_id: Id | None = None):
    found = api_keys.visible_keys(request.auth)
    return found.filter(user_id=user_id) if user_id is not None else found


@tokens_router.post("", response={201: TokenCreated, 404: Detail})
def create_token(request: HttpRequest, payload: TokenCreate):
    owner = api_keys.owner_for(request.auth, payload.user_id)
    token, plain = api_keys.create_key(owner, actor=request.auth, **payload.model_dump(exclude={"user_id"}))
    token.key = plain  # only this answer ever carries it
    return Status(201, token)


@tokens_router.get("/{int:token_id}", response=TokenOut)
def get_token(request: HttpRequest, token_id: Id):
    return get_object_or_404(api_keys.visible_keys(request.auth), pk=token_id)


@tokens_router.patch("/{int:token_id}", response=TokenOut)
def update_token(request: HttpRequest, token_id: Id, payload: TokenPatch):
    token = get_object_or_404(api_keys.visible_keys(request.auth).select_related("user"), pk=token_id)
    return api_keys.update_key(token, payload.model_dump(exclude_unset=True), actor=request.auth)


@tokens_router.delete("/{int:token_id}", response={204: None})
def delete_token(request: HttpRequest, token_id: Id):
    api_keys.delete_key(api_keys.visible_keys(request.auth), token_id, actor=request.auth)
    return Status(204, None)
