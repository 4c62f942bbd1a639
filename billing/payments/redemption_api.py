"""Management API: redemption codes (README, "Management API"). Rules live in billing.payments.redemptions."""

from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Field, Router, Schema, Status

from billing.models import Redemption
from billing.payments import redemptions
from billing.schemas import MAX_QUOTA, Integer, WriteSchema
from gateway_project.auth import staff_only

redemptions_router = Router(tags=["redemptions"], auth=staff_only)
redeem_router = Router(tags=["redemptions"])


class BatchCreate(WriteSchema):
    name: str = Field(min_length=1, max_length=64)
    quota: Integer = Field(gt=0, le=MAX_QUOTA, description="Quota each code credits")
    count: Integer = Field(1, ge=1, le=redemptions.MAX_BATCH)


class BatchCreated(Schema):
    keys: list[str] = Field(description="The plain codes; shown only in this answer")


class RedeemIn(WriteSchema):
    key: str = Field(min_length=1, max_length=64)


class Redeemed(Schema):
    quota: int = Field(description="Quota credited to the caller")


class Detail(Schema):
    detail: str


@redemptions_router.post("", response={201: BatchCreated})
def create_batch(request: HttpRequest, payload: BatchCreate):
    keys = redemptions.create_batch(payload.name, payload.quota, payload.count, actor=request.auth)
    return Status(201, {"keys": keys})


@redeem_router.post("", response={200: Redeemed, 404: Detail, 409: Detail})
def redeem(request: HttpRequest, payload: RedeemIn):
    try:
        return {"quota": redemptions.redeem(request.auth, payload.key)}
    except Redemption.DoesNotExist:
        return Status(404, {"detail": _("no such redemption code")})
    except redemptions.AlreadyRedeemed as used:
        return Status(409, {"detail": str(used)})
