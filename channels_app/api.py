"""Management API for channels (staff only). Rules live in channels_app.channels; the channel test and the
balance query call the upstream, so they live in the relay (relay.channel_test, relay.channel_balance)."""

import json
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Field, Router, Schema, Status
from ninja.pagination import paginate

from billing.schemas import Id, Integer, Pagination, WriteSchema
from channels_app import channel_types, channels, keys
from channels_app.models import Channel
from gateway_project.auth import staff_only
from relay import channel_balance, channel_test

if TYPE_CHECKING:
    ChannelType = str  # the registered slugs, known only at run time
else:
    ChannelType = Literal[channel_types.slugs()]
ChannelStatus = Literal["enabled", "disabled", "auto_disabled"]
KeyMode = Literal["random", "polling"]
KEYS_HELP = "Write-only; stored encrypted. Several keys: one per line, or a JSON list"

router = Router(tags=["channels"], auth=staff_only)


class KeyOut(Schema):
    position: int = Field(description="Names the key in /keys/{position}; stable while the key exists")
    key_hint: str = Field(description="Masked key (first 3 and last 4 characters)")
    status: ChannelStatus
    status_reason: str
    changed_at: datetime


class ChannelOut(Schema):
    id: int
    name: str
    type: str
    key_hint: str = Field(description="Masked first key; the keys themselves are write-only")
    key_mode: KeyMode
    keys: list[KeyOut] = Field(description="Every key with its own status (a channel of one key: that key)")
    base_url: str
    models: list[str]
    model_mapping: dict[str, str]
    status_code_mapping: dict[str, Any]
    groups: list[str]
    priority: int
    weight: int
    status: ChannelStatus
    status_reason: str
    auto_ban: bool
    test_model: str
    config: dict[str, Any]
    used_quota: int
    response_time_ms: int
    balance: float | None
    created_at: datetime

    @staticmethod
    def resolve_keys(channel: Channel) -> list:
        return channel.key_list()


# The range of the columns on every database (PostgreSQL's integer is 32 bits).
Priority = Annotated[Integer, Field(ge=-(2**31), le=2**31 - 1, description="Higher is tried first")]
Weight = Annotated[Integer, Field(ge=0, le=2**31 - 1)]
KeyPosition = Annotated[Integer, Field(ge=0, le=2**31 - 1)]


class ChannelCreate(WriteSchema):
    name: str = Field("", description="Default: the type")
    type: ChannelType = "openai"
    key: str = Field(min_length=1, description=KEYS_HELP)
    key_mode: KeyMode = Field("random", description="How a channel of several keys picks one: random or polling")
    base_url: str = Field("", description="Empty = the type's default host")
    models: list[str] = Field(min_length=1, description="Model names; a `*` suffix matches a prefix")
    model_mapping: dict[str, Any] = Field(default_factory=dict, description="Requested name -> upstream name")
    status_code_mapping: dict[str, Any] = Field(default_factory=dict, description='e.g. {"400": "500"}')
    groups: list[str] = Field(default_factory=lambda: ["default"])
    priority: Priority = 0
    weight: Weight = 1
    status: ChannelStatus = "enabled"
    auto_ban: bool = True
    test_model: str = ""
    config: dict[str, Any] = Field(default_factory=dict, description="Provider extras: api_version, region, ...")


class ChannelPatch(WriteSchema):
    name: str | None = None
    type: ChannelType | None = None
    key: str | None = Field(None, min_length=1, description=f"{KEYS_HELP}; replaces every stored key")
    key_mode: KeyMode | None = None
    base_url: str | None = None
    models: list[str] | None = Field(None, min_length=1)
    model_mapping: dict[str, Any] | None = None
    status_code_mapping: dict[str, Any] | None = None
    groups: list[str] | None = None
    priority: Priority | None = None
    weight: Weight | None = None
    status: ChannelStatus | None = None
    auto_ban: bool | None = None
    test_model: str | None = None
    config: dict[str, Any] | None = None


class KeyProbeOut(Schema):
    position: int
    success: bool
    time_ms: int
    message: str


class ProbeOut(Schema):
    success: bool
    time_ms: int
    message: str
    keys: list[KeyProbeOut] = Field(description="A channel of several keys: each key tested")


@router.get("", response=list[ChannelOut])
@paginate(Pagination, max_limit=500)
def list_channels(request: HttpRequest, status: ChannelStatus | None = None, type: ChannelType | None = None):
    found = Channel.objects.prefetch_related("keys").order_by("-priority", "id")
    if status:
        found = found.filter(status=status)
    return found.filter(type=type) if type else found


@router.post("", response={201: ChannelOut})
def create_channel(request: HttpRequest, payload: ChannelCreate):
    return Status(201, channels.create_channel(**payload.model_dump(), actor=request.auth))


@router.get("/{int:channel_id}", response=ChannelOut)
def get_channel(request: HttpRequest, channel_id: Id):
    return get_object_or_404(Channel, pk=channel_id)


@router.patch("/{int:channel_id}", response=ChannelOut)
def update_channel(request: HttpRequest, channel_id: Id, payload: ChannelPatch):
    channel = get_object_or_404(Channel, pk=channel_id)
    return channels.update_channel(channel, payload.model_dump(exclude_unset=True), actor=request.auth)


@router.delete("/{int:channel_id}", response={204: None})
def delete_channel(request: HttpRequest, channel_id: Id):
    channels.delete_channel(channel_id, actor=request.auth)
    return Status(204, None)


@router.get("/{int:channel_id}/keys", response=list[KeyOut])
def list_keys(request: HttpRequest, channel_id: Id):
    return get_object_or_404(Channel, pk=channel_id).key_list()


class KeysIn(WriteSchema):
    keys: str | list[str] = Field(description="One per line, or a list; keys the channel holds already are skipped")


@router.post("/{int:channel_id}/keys", response={201: list[KeyOut]})
def add_keys(request: HttpRequest, channel_id: Id, payload: KeysIn):
    text = payload.keys if isinstance(payload.keys, str) else json.dumps(payload.keys)
    return Status(201, keys.add_keys(get_object_or_404(Channel, pk=channel_id), text, actor=request.auth))


class KeyPatch(WriteSchema):
    status: Literal["enabled", "disabled"]


@router.patch("/{int:channel_id}/keys/{int:position}", response=KeyOut)
def update_key(request: HttpRequest, channel_id: Id, position: KeyPosition, payload: KeyPatch):
    channel = get_object_or_404(Channel, pk=channel_id)
    return keys.set_status(channel, position, payload.status, actor=request.auth)


@router.delete("/{int:channel_id}/keys/{int:position}", response={204: None})
def delete_key(request: HttpRequest, channel_id: Id, position: KeyPosition):
    keys.delete_key(get_object_or_404(Channel, pk=channel_id), position, actor=request.auth)
    return Status(204, None)


@router.post("/{int:channel_id}/test", response=ProbeOut)
def test_channel(request: HttpRequest, channel_id: Id):
    return channel_test.probe_channel(get_object_or_404(Channel, pk=channel_id))


class BalanceOut(Schema):
    balance: float


@router.post("/{int:channel_id}/balance", response={200: BalanceOut, 502: dict})
def update_channel_balance(request: HttpRequest, channel_id: Id):
    try:
        return {"balance": channel_balance.update_balance(get_object_or_404(Channel, pk=channel_id))}
    except channel_balance.BalanceUnavailable as unavailable:
        return Status(502, {"detail": str(unavailable)})
