"""Quota reservation, settlement and release: every transition idempotent on the request id.

Concurrency: reservation is a conditional `UPDATE ... SET remain = remain - x WHERE remain >= x` on the
key and then on the user, inside one transaction with the Reservation row. The database serialises the
updates of one row, so concurrent requests can only reserve what is there: quota never goes below zero
by more than what in-flight requests later turn out to cost beyond their reservation. Locks are always
taken in the order reservation -> key -> user -> channel -> daily usage row (moved by the log row's save,
see billing.usage_rollup, which relies on the user's lock being held already).
"""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from billing.models import Log, Reservation, Token, User


class QuotaExceeded(Exception):
    pass


@dataclass
class Charge:
    """What a finished request costs and what its log row says."""

    request_id: str
    quota: int
    model: str
    prompt_tokens: int
    completion_tokens: int
    channel_id: int | None
    token_name: str
    is_stream: bool
    use_time_ms: int
    content: str


def reserve(request_id: str, token_id: int, user_id: int, unlimited: bool, amount: int) -> None:
    """Hold `amount` on the key (unless unlimited) and on the user; QuotaExceeded if either lacks it."""
    with transaction.atomic():
        try:
            with transaction.atomic():
                Reservation.objects.create(
                    request_id=request_id, token_id=token_id, user_id=user_id, amount=amount, unlimited=unlimited
                )
        except IntegrityError:
            return  # already reserved under this request id
        if not unlimited:
            held = Token.objects.filter(pk=token_id, remain_quota__gte=amount).update(
                remain_quota=F("remain_quota") - amount
            )
            if not held:
                raise QuotaExceeded("this API key's quota is exhausted")
        if not User.objects.filter(pk=user_id, quota__gte=amount).update(quota=F("quota") - amount):
            raise QuotaExceeded("your account's quota is exhausted; top up to continue")


def settle(charge: Charge) -> bool:
    """Charge the real cost against the reservation and write the one consume log (which adds to the daily
    usage aggregate in this transaction). False if done before."""
    from channels_app.models import Channel

    with transaction.atomic():
        held = _take_held(charge.request_id, Reservation.State.SETTLED)
        if held is None:
            return False
        delta = charge.quota - held.amount
        token_updates = {"used_quota": F("used_quota") + charge.quota, "accessed_at": timezone.now()}
        if not held.unlimited:
            token_updates["remain_quota"] = F("remain_quota") - delta
        Token.objects.filter(pk=held.token_id).update(**token_updates)
        User.objects.filter(pk=held.user_id).update(
            quota=F("quota") - delta, used_quota=F("used_quota") + charge.quota, request_count=F("request_count") + 1
        )
        if charge.channel_id is not None:
            Channel.objects.filter(pk=charge.channel_id).update(used_quota=F("used_quota") + charge.quota)
        Log.objects.create(
            type=Log.Type.CONSUME,
            user_id=held.user_id,
            token_id=held.token_id,
            token_name=charge.token_name,
            channel_id=charge.channel_id,
            model=charge.model,
            prompt_tokens=charge.prompt_tokens,
            completion_tokens=charge.completion_tokens,
            quota=charge.quota,
            use_time_ms=charge.use_time_ms,
            is_stream=charge.is_stream,
            request_id=charge.request_id,
            content=charge.content,
        )
    return True


def release(request_id: str) -> bool:
    """Give a reservation back in full (the request never reached an upstream, or all upstreams failed)."""
    with transaction.atomic():
        held = _take_held(request_id, Reservation.State.RELEASED)
        if held is None:
            return False
        if not held.unlimited:
            Token.objects.filter(pk=held.token_id).update(remain_quota=F("remain_quota") + held.amount)
        User.objects.filter(pk=held.user_id).update(quota=F("quota") + held.amount)
    return True


def refund(charge: Charge) -> bool:
    """Give a settled charge back to its key and user (an asynchronous task that failed), with a refund log.

    Exactly once per request id, however many pollers race: the settled reservation is locked and flipped
    to released, so a second caller finds nothing to take (PostgreSQL and MySQL re-check the row after the
    first transaction commits; SQLite runs one writer at a time). The money, the log and the daily usage
    aggregate move in the same transaction. `charge.quota` is what `settle` charged. False if already
    refunded or never settled.
    """
    from channels_app.models import Channel

    with transaction.atomic():
        held = _take_held(charge.request_id, Reservation.State.RELEASED, current=Reservation.State.SETTLED)
        if held is None:
            return False
        token_updates = {"used_quota": F("used_quota") - charge.quota}
        if not held.unlimited:
            token_updates["remain_quota"] = F("remain_quota") + charge.quota
        Token.objects.filter(pk=held.token_id).update(**token_updates)
        User.objects.filter(pk=held.user_id).update(
            quota=F("quota") + charge.quota, used_quota=F("used_quota") - charge.quota
        )
        if charge.channel_id is not None:
            Channel.objects.filter(pk=charge.channel_id).update(used_quota=F("used_quota") - charge.quota)
        Log.objects.create(
            type=Log.Type.REFUND,
            user_id=held.user_id,
            token_id=held.token_id,
            token_name=charge.token_name,
            channel_id=charge.channel_id,
            model=charge.model,
            quota=charge.quota,
            request_id=charge.request_id,
            content=charge.content,
        )
    return True


def release_stale() -> int:
    """Release reservations whose request died with its process (run periodically)."""
    cutoff = timezone.now() - timedelta(seconds=settings.RESERVATION_STALE_SECONDS)
    stale = Reservation.objects.filter(state=Reservation.State.HELD, created_at__lt=cutoff)
    return sum(release(request_id) for request_id in stale.values_list("request_id", flat=True))


def _take_held(request_id: str, new_state: str, current: str = Reservation.State.HELD) -> Reservation | None:
    held = Reservation.objects.select_for_update().filter(request_id=request_id, state=current).first()
    if held is not None:
        Reservation.objects.filter(pk=held.pk).update(state=new_state)
    return held


def record_failure(request_id: str, key, channel_ids: list[int], model: str, message: str) -> None:
    """An error log for a request that reached upstreams which all failed; nothing is charged."""
    Log.objects.create(
        type=Log.Type.ERROR,
        user_id=key.user_id,
        token_id=key.token_id,
        token_name=key.token_name,
        channel_id=channel_ids[-1] if channel_ids else None,
        model=model,
        request_id=request_id,
        content=f"all upstream attempts failed (channels {', '.join(map(str, channel_ids))}): {message[:500]}",
    )
