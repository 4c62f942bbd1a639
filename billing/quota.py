"""Quota reservation, settlement and release: every transition idempotent on the request id.

Concurrency: reservation is a conditional `UPDATE ... SET remain = remain - x WHERE remain >= x` on the
key and then on the user, inside one transaction with the Reservation row. The database serialises the
updates of one row, so concurrent requests can only reserve what is there: quota never goes below zero
by more than what in-flight requests later turn out to cost beyond their reservation. Locks are always
taken in the order reservation -> key -> user -> channel -> daily usage row (moved by the ledger, see
billing.daily_usage, which relies on the user's lock being held already). The channels' counters belong to
channels_app: billing only announces what each channel served (`channels_charged`), in the same transaction.
"""

from dataclasses import dataclass
from datetime import timedelta
from typing import NamedTuple

from django.conf import settings
from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from billing import ledger, rows
from billing.models import ApiKey, Log, Reservation, User


class QuotaExceeded(Exception):
    """Not enough quota for a hold (or a removal); the message says why."""

    @classmethod
    def short(cls, holder: str, amount: int, left: int) -> "QuotaExceeded":
        """`holder` (the key, the account) has less than the hold: what the hold was and what is left, so that a
        client whose worst case does not fit is not told its quota is gone while it still has some."""
        if left <= 0:
            return cls(EXHAUSTED[holder])
        return cls(f"this request may cost up to {amount} quota; {holder} has {left} left")


# Quota columns are 64-bit: a hold beyond this cannot fit any balance, and must not overflow a statement.
MAX_AMOUNT = 2**63 - 1
KEY = "this API key"
ACCOUNT = "your account"
EXHAUSTED = {KEY: "this API key's quota is exhausted", ACCOUNT: "your account's quota is exhausted; top up to continue"}


# Sent inside the transaction that settles or refunds, with `quota_by_channel`: {channel id: quota it served,
# negative when given back}. channels_app's receiver adds it to each channel's used_quota, one UPDATE per
# channel in id order; an error there rolls the whole settlement back.
channels_charged = Signal()


class KeyGone(QuotaExceeded):
    """The key was deleted after this process cached it: nothing to hold on."""


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
    # The split of prompt_tokens and completion_tokens; journal lines written before it existed load as 0.
    cache_read_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass(eq=False)
class Hold:
    """Quota to hold for one request: on its key (unless unlimited) and on its user."""

    request_id: str
    token_id: int
    user_id: int
    unlimited: bool
    amount: int


class Held(NamedTuple):
    """A reservation as settling, releasing and refunding need it."""

    id: int
    request_id: str
    token_id: int
    user_id: int
    amount: int
    unlimited: bool


def reserve(request_id: str, token_id: int, user_id: int, unlimited: bool, amount: int) -> None:
    """Hold `amount` on the key (unless unlimited) and on the user; QuotaExceeded if either lacks it."""
    refused = reserve_many([Hold(request_id, token_id, user_id, unlimited, amount)])[0]
    if refused is not None:
        raise refused


def check_hold(hold: Hold) -> None:
    """Raise what `reserve` would if the hold did not fit now, without taking anything: one read, for a
    request that must not start costly work (sizing its images) unless it can pay for its text first."""
    found = ApiKey.objects.filter(pk=hold.token_id).values_list("remain_quota", "user__quota").first()
    if found is None:
        raise KeyGone("invalid API key")
    key_left, user_left = found
    if not hold.unlimited and key_left < hold.amount:
        raise QuotaExceeded.short(KEY, hold.amount, key_left)
    if user_left < hold.amount:
        raise QuotaExceeded.short(ACCOUNT, hold.amount, user_left)


def reserve_many(holds: list[Hold]) -> list[QuotaExceeded | None]:
    """Reserve for many requests in one transaction: None for each hold taken (or taken before under
    its request id), QuotaExceeded for each that did not fit. Holds on one key or user are taken
    together when their sum fits, else one by one in order, so each still gets exactly what a request
    of its own would have got."""
    with transaction.atomic():
        fresh = _not_reserved_yet(holds)
        limited = [hold for hold in fresh if not hold.unlimited]
        key_short = _take_from_rows(ApiKey, "remain_quota", limited, lambda hold: hold.token_id)
        keyed = [hold for hold in fresh if hold not in key_short]
        user_short = _take_from_rows(User, "quota", keyed, lambda hold: hold.user_id)
        for hold in user_short:
            if not hold.unlimited:
                rows.add(ApiKey, {"id": hold.token_id}, {"remain_quota": hold.amount})
        rows.insert(
            Reservation,
            [
                Reservation(
                    request_id=hold.request_id,
                    token_id=hold.token_id,
                    user_id=hold.user_id,
                    amount=hold.amount,
                    unlimited=hold.unlimited,
                )
                for hold in keyed
                if hold not in user_short
            ],
        )
        # Only a refusal reads what is left (the hot path is the conditional updates alone).
        key_left = _left(ApiKey, "remain_quota", {hold.token_id for hold in key_short})
        user_left = _left(User, "quota", {hold.user_id for hold in user_short})
    refusals = {hold: _refusal(KEY, hold.amount, key_left.get(hold.token_id)) for hold in key_short}
    refusals.update((hold, _refusal(ACCOUNT, hold.amount, user_left.get(hold.user_id))) for hold in user_short)
    return [refusals.get(hold) for hold in holds]


def _refusal(holder: str, amount: int, left: int | None) -> QuotaExceeded:
    """No row left: the key (or its user) was deleted after this process cached it."""
    return KeyGone("invalid API key") if left is None else QuotaExceeded.short(holder, amount, left)


def _left(model, field: str, row_ids: set[int]) -> dict[int, int]:
    """`field` of each row among `row_ids` that exists, by id."""
    return dict(rows.select(model, ["id", field], {}, ("id", sorted(row_ids))))


def _not_reserved_yet(holds: list[Hold]) -> list[Hold]:
    """The holds whose request id has no reservation yet (the first of any repeated within the batch)."""
    request_ids = [hold.request_id for hold in holds]
    seen = {request_id for (request_id,) in rows.select(Reservation, ["request_id"], {}, ("request_id", request_ids))}
    fresh = []
    for hold in holds:
        if hold.request_id not in seen:
            seen.add(hold.request_id)
            fresh.append(hold)
    return fresh


def _take_from_rows(model, field: str, holds: list[Hold], row_of) -> set[Hold]:
    """Take each hold's amount from its row's `field` without going below zero; the holds that did not fit.
    Rows are locked in id order."""
    by_row: dict[int, list[Hold]] = {}
    for hold in holds:
        by_row.setdefault(row_of(hold), []).append(hold)
    short: set[Hold] = set()
    for row_id in sorted(by_row):
        group = by_row[row_id]
        total = sum(hold.amount for hold in group)
        if total <= MAX_AMOUNT and rows.take(model, field, row_id, total):
            continue
        short.update(hold for hold in group if not rows.take(model, field, row_id, hold.amount))
    return short


def settle(charge: Charge) -> bool:
    """Charge the real cost against the reservation and write the one consume log. False if done before."""
    return settle_many([charge])[0]


def settle_many(charges: list[Charge], also_released: bool = False) -> list[bool]:
    """Settle many requests in one transaction: each charge moves its reservation, key, user and channel
    and writes its consume log through billing.ledger (which moves the daily usage aggregate). Counters of one
    key, user or channel move once for the whole batch, in id order. One flag per charge: False if it was
    settled before (or its request id came twice in the batch).

    `also_released`: a charge whose reservation was given back without a consume log (the reconciler
    released it while the charge waited in billing.journal) is charged in full."""
    with transaction.atomic():
        request_ids = [charge.request_id for charge in charges]
        held = _take_all_held(request_ids, Reservation.State.SETTLED)
        if also_released and len(held) < len(set(request_ids)):
            held.update(_released_unbilled([request_id for request_id in request_ids if request_id not in held]))
        flags, settled = [], []
        for charge in charges:
            reservation = held.pop(charge.request_id, None)
            flags.append(reservation is not None)
            if reservation is not None:
                settled.append((charge, reservation))
        now = timezone.now()
        tokens, users = Counters(), Counters()
        served: dict[int, int] = {}
        for charge, reservation in settled:
            delta = charge.quota - reservation.amount
            key_delta = 0 if reservation.unlimited else -delta
            tokens.add(reservation.token_id, used_quota=charge.quota, remain_quota=key_delta)
            users.add(reservation.user_id, quota=-delta, used_quota=charge.quota, request_count=1)
            if charge.channel_id is not None:
                served[charge.channel_id] = served.get(charge.channel_id, 0) + charge.quota
        tokens.apply(ApiKey, accessed_at=now)
        users.apply(User)
        _announce_served(served)
        logs = [_consume_log(charge, reservation, now) for charge, reservation in settled]
        ledger.write_many(logs)
    return flags


def _announce_served(quota_by_channel: dict[int, int]) -> None:
    if any(quota_by_channel.values()):
        channels_charged.send(sender=Charge, quota_by_channel=quota_by_channel)


class Counters:
    """Increments per row id, applied as one UPDATE per row."""

    def __init__(self) -> None:
        self.rows: dict[int, dict[str, int]] = {}

    def add(self, row_id: int | None, **increments: int) -> None:
        if row_id is None:
            return
        row = self.rows.setdefault(row_id, {})
        for name, value in increments.items():
            row[name] = row.get(name, 0) + value

    def apply(self, model, **also) -> None:
        for row_id in sorted(self.rows):
            changes = {name: value for name, value in self.rows[row_id].items() if value}
            if changes or also:
                rows.add(model, {"id": row_id}, changes, **also)


def _consume_log(charge: Charge, reservation: Held, now) -> Log:
    return Log(
        type=Log.Type.CONSUME,
        created_at=now,
        user_id=reservation.user_id,
        token_id=reservation.token_id,
        token_name=charge.token_name,
        channel_id=charge.channel_id,
        model=charge.model,
        prompt_tokens=charge.prompt_tokens,
        completion_tokens=charge.completion_tokens,
        cache_read_tokens=charge.cache_read_tokens,
        cache_write_5m_tokens=charge.cache_write_5m_tokens,
        cache_write_1h_tokens=charge.cache_write_1h_tokens,
        reasoning_tokens=charge.reasoning_tokens,
        quota=charge.quota,
        use_time_ms=charge.use_time_ms,
        is_stream=charge.is_stream,
        request_id=charge.request_id,
        content=charge.content,
    )


def release(request_id: str) -> bool:
    """Give a reservation back in full (the request never reached an upstream, or all upstreams failed)."""
    with transaction.atomic():
        held = _take_held(request_id, Reservation.State.RELEASED)
        if held is None:
            return False
        if not held.unlimited:
            rows.add(ApiKey, {"id": held.token_id}, {"remain_quota": held.amount})
        rows.add(User, {"id": held.user_id}, {"quota": held.amount})
    return True


def refund(charge: Charge) -> bool:
    """Give a settled charge back to its key and user (an asynchronous task that failed), with a refund log.

    Exactly once per request id, however many pollers race: the settled reservation is locked and flipped
    to released, so a second caller finds nothing to take (PostgreSQL and MySQL re-check the row after the
    first transaction commits; SQLite runs one writer at a time). The money, the log and the daily usage
    aggregate move in the same transaction. `charge.quota` is what `settle` charged. False if already
    refunded or never settled.
    """
    with transaction.atomic():
        held = _take_held(charge.request_id, Reservation.State.RELEASED, current=Reservation.State.SETTLED)
        if held is None:
            return False
        key_refund = {"used_quota": -charge.quota}
        if not held.unlimited:
            key_refund["remain_quota"] = charge.quota
        rows.add(ApiKey, {"id": held.token_id}, key_refund)
        rows.add(User, {"id": held.user_id}, {"quota": charge.quota, "used_quota": -charge.quota})
        if charge.channel_id is not None:
            _announce_served({charge.channel_id: -charge.quota})
        ledger.write(
            Log(
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
        )
    return True


def release_stale() -> int:
    """Release reservations whose request died with its process (run periodically)."""
    cutoff = timezone.now() - timedelta(seconds=settings.RESERVATION_STALE_SECONDS)
    stale = Reservation.objects.filter(state=Reservation.State.HELD, created_at__lt=cutoff)
    return sum(release(request_id) for request_id in stale.values_list("request_id", flat=True))


def _take_all_held(request_ids: list[str], new_state: str, current: str = Reservation.State.HELD) -> dict[str, Held]:
    """Lock the reservations among `request_ids` that are in state `current` and move them to `new_state`."""
    held = _locked(request_ids, current)
    _move(held, new_state)
    return held


def _released_unbilled(request_ids: list[str]) -> dict[str, Held]:
    """Lock the released reservations among `request_ids` that have no consume log and move them to settled,
    with amount 0: what they held is back on the key and the user already."""
    released = _locked(request_ids, Reservation.State.RELEASED)
    billed = set(
        Log.objects.filter(type=Log.Type.CONSUME, request_id__in=list(released)).values_list("request_id", flat=True)
    )
    unbilled = {rid: held._replace(amount=0) for rid, held in released.items() if rid not in billed}
    _move(unbilled, Reservation.State.SETTLED)
    return unbilled


def _locked(request_ids: list[str], state: str) -> dict[str, Held]:
    """The reservations among `request_ids` in `state`, locked, by request id."""
    found = rows.select(Reservation, Held._fields, {"state": state}, ("request_id", request_ids), lock=True)
    # MySQL and SQLite give 0/1; `unlimited=` is the sixth field, which mypy cannot tell from row's length.
    return {row[1]: Held(*row[:-1], unlimited=bool(row[-1])) for row in found}  # type: ignore[misc]


def _move(held: dict[str, Held], new_state: str) -> None:
    if held:
        rows.set_in(Reservation, [reservation.id for reservation in held.values()], state=new_state)


def _take_held(request_id: str, new_state: str, current: str = Reservation.State.HELD) -> Held | None:
    return _take_all_held([request_id], new_state, current).get(request_id)


def record_failure(request_id: str, key, channel_ids: list[int], model: str, message: str) -> None:
    """An error log for a request that reached upstreams which all failed; nothing is charged."""
    ledger.write(
        Log(
            type=Log.Type.ERROR,
            user_id=key.user_id,
            token_id=key.token_id,
            token_name=key.token_name,
            channel_id=channel_ids[-1] if channel_ids else None,
            model=model,
            request_id=request_id,
            content=f"all upstream attempts failed (channels {', '.join(map(str, channel_ids))}): {message[:500]}",
        )
    )
