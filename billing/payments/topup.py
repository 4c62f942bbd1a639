"""Top-up orders paid with WeChat Pay: pending -> paid (credits quota once) or pending -> closed.

Only `mark_paid` moves money. It is reached from a verified notification or from the reconcile job's
verified query answer, both of which can arrive many times and concurrently for one order.
"""

import logging
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from billing import audit, ledger
from billing.models import Log, TopUpOrder, User
from billing.payments import wechatpay
from billing.payments.wechatpay import NotificationRejected, WeChatPayError

logger = logging.getLogger(__name__)

ORDER_TTL = timedelta(minutes=30)  # the QR code's life (WeChat's time_expire)
NOTIFY_GRACE = timedelta(minutes=1)  # a notification normally arrives seconds after payment
RECONCILE_BATCH = 100
MAX_YUAN = 1_000_000


class Outcome(StrEnum):
    CREDITED = "credited"
    ALREADY_PAID = "already_paid"
    UNKNOWN_ORDER = "unknown_order"
    AMOUNT_MISMATCH = "amount_mismatch"
    IGNORED = "ignored"  # a genuine notification that is not a successful payment: acknowledged, no change


def new_out_trade_no() -> str:
    """28 characters: `TU`, the UTC time to the second, 12 random hex digits (WeChat allows 6 to 32)."""
    return f"TU{timezone.now():%Y%m%d%H%M%S}{secrets.token_hex(6).upper()}"


def quota_for(amount_yuan: int) -> int:
    return amount_yuan * settings.TOPUP_QUOTA_PER_YUAN


def visible_orders(viewer: User) -> QuerySet[TopUpOrder]:
    orders = TopUpOrder.objects.order_by("-created_at", "-id")
    return orders if viewer.is_staff else orders.filter(user=viewer)


def create_order(user: User, amount_yuan: int) -> TopUpOrder:
    """A pending order placed with WeChat Pay, with its `code_url` for the QR code.

    PaymentsDisabled when WeChat Pay is not configured, ValidationError for a bad amount, WeChatPayError
    when WeChat Pay refuses or cannot be reached. The call to WeChat Pay happens outside any transaction.
    """
    wechatpay.load_config()
    if not settings.TOPUP_MIN_YUAN <= amount_yuan <= MAX_YUAN:
        bounds = {"min": settings.TOPUP_MIN_YUAN, "max": MAX_YUAN}
        raise ValidationError({"amount": _("must be between %(min)d and %(max)d yuan") % bounds})
    order = TopUpOrder.objects.create(
        out_trade_no=new_out_trade_no(),
        user=user,
        amount_fen=amount_yuan * 100,
        quota=quota_for(amount_yuan),
        expires_at=timezone.now() + ORDER_TTL,
    )
    try:
        code_url = wechatpay.create_native_order(
            order.out_trade_no,
            order.amount_fen,
            f"API credit top-up {amount_yuan} CNY",
            order.expires_at,
            attach=f"user={user.pk}",
        )
    except WeChatPayError as failure:
        # An error answer means WeChat Pay holds no such order. After a network failure it may: the order
        # stays pending and the reconcile job asks WeChat Pay about it.
        if failure.status is not None:
            close(order.out_trade_no)
        raise
    TopUpOrder.objects.filter(pk=order.pk).update(code_url=code_url)
    order.code_url = code_url
    return order


def mark_paid(out_trade_no: str, transaction_id: str, total_fen: int, via: str) -> Outcome:
    """Mark the order paid and credit its quota with a top-up log and an audit entry, exactly once; `total_fen`
    must match.

    Concurrency: the order row is locked (SELECT ... FOR UPDATE; SQLite takes its write lock when the
    transaction starts), and the flip to paid is a conditional UPDATE that only a not-yet-paid row
    matches, so of concurrent deliveries exactly one credits. Flip, credit, log and audit entry share the
    transaction.
    Locks: order -> user. A closed order may still become paid: WeChat Pay says the payer paid, so the
    quota is owed (closing happens only after WeChat Pay accepted the close, so this should not occur).
    """
    with transaction.atomic():
        order = TopUpOrder.objects.select_for_update().filter(out_trade_no=out_trade_no).first()
        if order is None:
            return Outcome.UNKNOWN_ORDER
        if order.amount_fen != total_fen:
            return Outcome.AMOUNT_MISMATCH
        flipped = (
            TopUpOrder.objects.filter(pk=order.pk)
            .exclude(status=TopUpOrder.Status.PAID)
            .update(status=TopUpOrder.Status.PAID, transaction_id=transaction_id[:64], paid_at=timezone.now())
        )
        if not flipped:
            return Outcome.ALREADY_PAID
        if order.status == TopUpOrder.Status.CLOSED:
            logger.warning("top-up %s was closed but WeChat Pay reports it paid; crediting", out_trade_no)
        if order.user_id is not None:  # the order's lock keeps its user: deleting one first unlinks its orders
            User.objects.filter(pk=order.user_id).update(quota=F("quota") + order.quota)
            audit.quota_moved(audit.System.WECHAT_PAY, order.user_id, order.quota)
        ledger.write(
            Log(
                type=Log.Type.TOPUP,
                user_id=order.user_id,
                quota=order.quota,
                request_id=out_trade_no,
                content=f"WeChat Pay top-up {order.amount_yuan} CNY, order {out_trade_no}, "
                f"transaction {transaction_id or '?'} (confirmed by {via})",
            )
        )
    return Outcome.CREDITED


def close(out_trade_no: str) -> bool:
    """pending -> closed (no money moves); False if the order was not pending."""
    return bool(
        TopUpOrder.objects.filter(out_trade_no=out_trade_no, status=TopUpOrder.Status.PENDING).update(
            status=TopUpOrder.Status.CLOSED, closed_at=timezone.now()
        )
    )


def process_notification(headers: Mapping[str, str], body: bytes) -> Outcome:
    """Verify a payment notification and apply it; NotificationRejected (never credited) if it does not hold."""
    verified = wechatpay.verify_notification(headers, body)
    payment = verified["resource"]
    if verified.get("event_type") != "TRANSACTION.SUCCESS" or payment.get("trade_state") != "SUCCESS":
        logger.info("WeChat Pay notification %s ignored: %s", verified.get("id"), verified.get("event_type"))
        return Outcome.IGNORED
    config = wechatpay.load_config()
    if (payment.get("mchid"), payment.get("appid")) != (config.mchid, config.appid):
        raise NotificationRejected(f"payment for merchant {payment.get('mchid')}/{payment.get('appid')}")
    try:
        out_trade_no, total_fen = str(payment["out_trade_no"]), int(payment["amount"]["total"])
    except (KeyError, TypeError, ValueError):
        raise NotificationRejected("payment without out_trade_no or amount.total") from None
    outcome = mark_paid(out_trade_no, str(payment.get("transaction_id", "")), total_fen, via="notification")
    if outcome == Outcome.UNKNOWN_ORDER:
        raise NotificationRejected(f"unknown order {out_trade_no[:32]!r}")
    if outcome == Outcome.AMOUNT_MISMATCH:
        raise NotificationRejected(f"order {out_trade_no}: paid {total_fen} fen, which is not the order's amount")
    return outcome


def reconcile_pending(now: datetime | None = None) -> int:
    """The periodic job: settle pending orders whose notification never came; close expired unpaid ones.

    Asks WeChat Pay about each pending order older than NOTIFY_GRACE (oldest first, at most
    RECONCILE_BATCH a run) and returns how many orders it paid or closed. Safe on several processes at
    once: every transition is conditional. Does nothing while WeChat Pay is not configured.
    """
    if not wechatpay.enabled():
        return 0
    now = now or timezone.now()
    due = TopUpOrder.objects.filter(status=TopUpOrder.Status.PENDING, created_at__lt=now - NOTIFY_GRACE)
    changed = 0
    for out_trade_no in due.order_by("created_at").values_list("out_trade_no", flat=True)[:RECONCILE_BATCH]:
        try:
            changed += reconcile_order(out_trade_no, now)
        except WeChatPayError:
            continue  # logged by billing.payments.wechatpay; the next run tries again
    return changed


def reconcile_order(out_trade_no: str, now: datetime | None = None) -> bool:
    """Bring one pending order in line with WeChat Pay; True if it became paid or closed."""
    now = now or timezone.now()
    order = TopUpOrder.objects.filter(out_trade_no=out_trade_no, status=TopUpOrder.Status.PENDING).first()
    if order is None:
        return False
    payment = wechatpay.query_order(out_trade_no)
    if payment is None:
        return close(out_trade_no)  # the order never reached WeChat Pay
    state = payment.get("trade_state")
    if state == "SUCCESS":
        outcome = mark_paid(out_trade_no, str(payment.get("transaction_id", "")), payment["amount"]["total"], "query")
        if outcome == Outcome.AMOUNT_MISMATCH:
            logger.error("top-up %s: WeChat Pay reports %s fen paid; not credited", out_trade_no, payment["amount"])
        return outcome == Outcome.CREDITED
    if state in ("CLOSED", "REVOKED", "PAYERROR"):
        return close(out_trade_no)
    if state == "NOTPAY" and now > order.expires_at:
        wechatpay.close_order(out_trade_no)
        return close(out_trade_no)
    if state == "REFUND":
        logger.error("top-up %s is pending here but refunded at WeChat Pay; left for an operator", out_trade_no)
    return False
