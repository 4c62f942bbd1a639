"""Prices as an operator reads them: USD per million tokens (input, output, the cache lanes) or USD per call,
model by model, worked out from the ratios billing.pricing bills with; and the way back, one model's USD prices
written as ratios into the price table (audited like every price change)."""

from dataclasses import dataclass
from decimal import Decimal

from billing import pricing
from billing.audit import Actor

MILLION = 1_000_000
CACHE_TABLES = {
    "cache_read": "cache_ratio",
    "cache_write_5m": "create_cache_ratio",
    "cache_write_1h": "create_cache_ratio_1h",
}
PER_MODEL_TABLES = ("model_ratio", "completion_ratio", "model_price", *CACHE_TABLES.values())


@dataclass(frozen=True)
class ModelPrice:
    """One model's effective price at group ratio 1. A fixed-price model has only `per_call`; a token-priced
    one has `input` and `output` and, where the model has its own, the cache lanes (None: billed as input)."""

    model: str
    overridden: bool  # its price differs from the built-in default (or it has no default)
    input: float | None = None  # USD per 1M tokens, as every field below but per_call
    output: float | None = None
    cache_read: float | None = None
    cache_write_5m: float | None = None
    cache_write_1h: float | None = None
    per_call: float | None = None  # USD per request

    @property
    def shown(self) -> list[str | None]:
        """The prices as the table shows them, in its column order (None: no such price)."""
        columns = self.input, self.output, self.cache_read, self.cache_write_5m, self.cache_write_1h, self.per_call
        return [None if value is None else usd(value) for value in columns]


def usd(value: float) -> str:
    """Dollars with cents, and up to six decimals when a price is that small: 2.50, 0.075, 0.0375."""
    whole, _, decimals = f"{value:,.6f}".rstrip("0").partition(".")
    return f"{whole}.{decimals.ljust(2, '0')}"


def price_list(search: str = "") -> list[ModelPrice]:
    """Every model the price tables name (the `prefix*` entries too), sorted, those containing `search`."""
    prices = pricing.current()
    defaults = pricing.defaults()
    names = sorted(prices.model_ratio.keys() | prices.model_price.keys())
    return [model_price(prices, defaults, name) for name in names if search.lower() in name.lower()]


def model_price(prices: pricing.Prices, defaults: dict, model: str) -> ModelPrice:
    overridden = any(getattr(prices, table).get(model) != defaults[table].get(model) for table in PER_MODEL_TABLES)
    quote = prices.quote(model, group="")
    if quote.price is not None:
        return ModelPrice(model, overridden, per_call=quote.price)
    input_usd = usd_per_million(quote.model_ratio, prices.quota_per_unit)
    lanes = {
        lane: input_usd * ratio
        for lane, table in CACHE_TABLES.items()
        if (ratio := pricing.lookup(getattr(prices, table), model)) is not None
    }
    return ModelPrice(model, overridden, input_usd, input_usd * quote.completion_ratio, **lanes)


def usd_per_million(ratio: float, quota_per_unit: int) -> float:
    """A ratio is quota per token: a million tokens cost ratio x 1M quota, QUOTA_PER_UNIT of which make 1 USD."""
    return round(ratio * MILLION / quota_per_unit, 9)


def set_model_price(model: str, price: ModelPrice, actor: Actor) -> None:
    """Store `price` (USD, as price_list shows it) as the model's entries in the price table: a per-call price,
    or the input price as the model ratio and the others relative to it. A cache lane left None is dropped
    (billed as input); the same price entered again changes nothing."""
    prices = pricing.current()
    tables = {table: dict(getattr(prices, table)) for table in PER_MODEL_TABLES}
    if price.per_call is not None:
        tables["model_price"][model] = price.per_call
    else:
        tables["model_price"].pop(model, None)
        input_usd = price.input or 0.0
        tables["model_ratio"][model] = ratio_of(input_usd, prices.quota_per_unit)
        tables["completion_ratio"][model] = relative(price.output, input_usd) or 1.0
        for lane, table in CACHE_TABLES.items():
            lane_ratio = relative(getattr(price, lane), input_usd)
            if lane_ratio is None:
                tables[table].pop(model, None)
            else:
                tables[table][model] = lane_ratio
    changed = {table: values for table, values in tables.items() if values != getattr(prices, table)}
    if changed:
        pricing.save(changed, actor=actor)


def ratio_of(usd_per_1m: float, quota_per_unit: int) -> float:
    return float(Decimal(str(usd_per_1m)) * quota_per_unit / MILLION)


def relative(usd: float | None, input_usd: float) -> float | None:
    """`usd` as a multiple of the input price (None when not given; 1 when the input is free)."""
    if usd is None:
        return None
    return float(Decimal(str(usd)) / Decimal(str(input_usd))) if input_usd else 1.0
