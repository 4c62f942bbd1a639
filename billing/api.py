"""Management API: the ledger (logs and their totals) and prices. Rules live in billing.logs and billing.pricing."""

from django.http import HttpRequest
from ninja import Query, Router
from ninja.pagination import paginate

from billing import pricing
from billing.logs import LogFilter, log_stats, visible_logs
from billing.schemas import MAX_PAGE, LogOut, LogQuery, LogStats, Pagination, Prices, PricesPatch
from gateway_project.auth import staff_only

logs_router = Router(tags=["logs"])
pricing_router = Router(tags=["pricing"])


@logs_router.get("", response=list[LogOut])
@paginate(Pagination, max_limit=MAX_PAGE)
def list_logs(request: HttpRequest, filters: Query[LogQuery]):
    return visible_logs(request.auth, LogFilter(**filters.model_dump()))


@logs_router.get("/stats", response=LogStats)
def logs_stats(request: HttpRequest, filters: Query[LogQuery]):
    return log_stats(request.auth, LogFilter(**filters.model_dump()))


@pricing_router.get("", response=Prices)
def get_prices(request: HttpRequest):
    return pricing.current().as_dict()


@pricing_router.put("", response=Prices, auth=staff_only)
def replace_prices(request: HttpRequest, payload: Prices):
    return pricing.save(payload.model_dump(exclude_none=True), actor=request.auth).as_dict()


@pricing_router.patch("", response=Prices, auth=staff_only)
def merge_prices(request: HttpRequest, payload: PricesPatch):
    return pricing.save(payload.model_dump(exclude_none=True), merge=True, actor=request.auth).as_dict()
