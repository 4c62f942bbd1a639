"""Prices (ModelRatio, CompletionRatio, CacheRatio, CreateCacheRatio, ModelPrice, GroupRatio, QuotaPerUnit) and
redemption codes. new-api has no option for the 1-hour cache write: its price stays as it is here."""

from functools import partial
from typing import Any

from django.apps import apps

from billing import pricing
from billing.audit import System
from billing.models import PriceTable, hash_key
from gateway_project.oneapi_import.run import Run, Tally, rows_by
from gateway_project.oneapi_import.values import json_object, moment, number, text

PRICE_OPTIONS = {
    "ModelRatio": "model_ratio",
    "CompletionRatio": "completion_ratio",
    "CacheRatio": "cache_ratio",
    "CreateCacheRatio": "create_cache_ratio",
    "ModelPrice": "model_price",
    "GroupRatio": "group_ratio",
}


class MoneyImport(Run):
    def import_prices(self) -> None:
        options = {text(row.get("key")): text(row.get("value")) for row in self.data["options"][1]}
        tally = self.report.tallies["options"]
        current = pricing.current().as_dict()
        # Before any price was saved here the table holds only our defaults: the source's prices win then.
        overwrite = self.update or not PriceTable.objects.filter(pk=1).exists()
        changes: dict[str, Any] = {}
        for option, name in PRICE_OPTIONS.items():
            if option not in options:
                continue
            table = json_object(options[option])
            if table is None:
                self.note(f"option {option} is not a JSON object: skipped")
                tally.skipped += 1
                continue
            for model, value in table.items():
                if not isinstance(value, int | float) or isinstance(value, bool):
                    self.note(f"option {option}: {model!r} has no number: skipped")
                    tally.skipped += 1
                elif model not in current[name] or (overwrite and current[name][model] != value):
                    changes.setdefault(name, {})[model] = float(value)
                    self.count_price(tally, model in current[name], f"{option} {model} = {value:g}")
                else:
                    tally.kept += 1
        if options.get("QuotaPerUnit"):
            per_unit = number(options["QuotaPerUnit"])
            if per_unit is None or per_unit <= 0:
                self.note(f"option QuotaPerUnit {options['QuotaPerUnit']!r} is not a positive number: skipped")
                tally.skipped += 1
            elif per_unit != current["quota_per_unit"] and overwrite:
                changes["quota_per_unit"] = int(per_unit)
                self.count_price(tally, True, f"QuotaPerUnit = {per_unit:g}")
            else:
                tally.kept += 1
        if changes and not self.dry_run:
            pricing.save(changes, merge=True, actor=System.IMPORT)

    def count_price(self, tally: Tally, exists: bool, label: str) -> None:
        if exists:
            tally.updated += 1
        else:
            tally.created += 1
        self.report.actions.append(f"{'update' if exists else 'add'} price {label}")

    def import_redemptions(self) -> None:
        rows = list(self.live_rows("redemptions"))
        try:
            redemption = apps.get_model("billing", "Redemption")
        except LookupError:
            if rows:
                self.note(f"redemptions: {len(rows)} codes not imported: this gateway has no redemption codes yet")
                self.report.tallies["redemptions"].skipped += len(rows)
            return
        codes = {int(row["id"]): text(row.get("key")).strip() for row in rows}
        existing = rows_by(redemption, "code_hash", [hash_key(code) for code in codes.values()])
        for row in rows:
            code, status = codes[int(row["id"])], int(row.get("status") or 0)
            label = f"redemption code #{row['id']} {text(row.get('name'))!r} ({code[:4]}...{code[-4:]})"
            if not code or status not in (1, 3):
                # Here a code is unused or used; a disabled one imported as unused could be redeemed.
                self.note(f"{label}: {'disabled' if code else 'no code'}: skipped")
                self.report.tallies["redemptions"].skipped += 1
                continue
            values = {
                "name": text(row.get("name"))[:64] or "one-api",
                "quota": int(row.get("quota") or 0),
                "status": "unused" if status == 1 else "used",
                "created_by": self.users_by_source_id.get(int(row.get("user_id") or 0)),
                "used_by": self.users_by_source_id.get(int(row.get("used_user_id") or 0)),
                "used_at": moment(row.get("redeemed_time")) if status == 3 else None,
                **({"created_at": moment(row.get("created_time"))} if moment(row.get("created_time")) else {}),
            }
            make = partial(redemption, code_hash=hash_key(code), code_hint=f"{code[:4]}...{code[-4:]}")
            self.sync("redemptions", existing.get(hash_key(code)), make, values, label)
