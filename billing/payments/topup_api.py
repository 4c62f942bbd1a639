"""Management API: WeChat Pay top-up orders and WeChat Pay's notification callback.

Rules live in billing.payments.topup.
"""

import logging
from typing import Literal

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from ninja import Field, Router, Schema, Status

from billing.models import TopUpOrder
from billing.payments import qr, topup
from billing.payments.wechatpay import NotificationRejected, PaymentsDisabled, WeChatPayError
from billing.schemas import Integer, WriteSchema

logger = logging.getLogger(__name__)

topup_router = Router(tags=["top-up"])
# WeChat Pay's own wording ("failed"). Why a notification failed goes to our log only: the caller may be a
# forger probing what to fix, and an internal error's details are ours.
NOTIFY_FAILED = {"code": "FAIL", "message": "失败"}


class OrderCreate(WriteSchema):
    amount: Integer = Field(gt=0, le=topup.MAX_YUAN, description="Yuan (CNY), whole; at least TOPUP_MIN_YUAN")


class OrderCreated(Schema):
    out_trade_no: str
    code_url: str
    qr_svg: str = Field(description="The code_url as an inline SVG QR code")
    amount_fen: int
    quota: int = Field(description="Quota credited once the order is paid")


class OrderStatus(Schema):
    status: Literal["pending", "paid", "closed"]
    quota: int


class Detail(Schema):
    detail: str


# Before /wechat/{out_trade_no}, which would otherwise claim the path (and answer 405 to the POST).
@topup_router.post("/wechat/notify", auth=None, include_in_schema=False)
def wechat_notify(request: HttpRequest) -> HttpResponse:
    """WeChat Pay's callback: acknowledged only once the payment is recorded, so WeChat Pay retries otherwise."""
    try:
        outcome = topup.process_notification(request.headers, request.body)
    except NotificationRejected as rejected:
        logger.warning("WeChat Pay notification rejected (%s): %s", request.META.get("REMOTE_ADDR"), rejected)
        return JsonResponse(NOTIFY_FAILED, status=400)
    except Exception:  # the database, a bug: WeChat Pay retries on its schedule
        logger.exception("WeChat Pay notification could not be processed")
        return JsonResponse(NOTIFY_FAILED, status=500)
    logger.info("WeChat Pay notification accepted: %s", outcome)
    return JsonResponse({"code": "SUCCESS", "message": "成功"})


@topup_router.post("/wechat", response={201: OrderCreated, 502: Detail, 503: Detail})
def create_order(request: HttpRequest, payload: OrderCreate):
    try:
        order = topup.create_order(request.auth, payload.amount)
    except PaymentsDisabled as disabled:
        logger.info("top-up refused: %s", disabled)
        return Status(503, {"detail": _("payments are not enabled")})
    except WeChatPayError as failure:
        return Status(502, {"detail": str(failure)})
    return Status(201, {**_fields(order), "qr_svg": qr.svg(order.code_url)})


@topup_router.get("/wechat/{out_trade_no}", response=OrderStatus)
def order_status(request: HttpRequest, out_trade_no: str):
    return get_object_or_404(topup.visible_orders(request.auth), out_trade_no=out_trade_no)


def _fields(order: TopUpOrder) -> dict:
    return {name: getattr(order, name) for name in ("out_trade_no", "code_url", "amount_fen", "quota")}
