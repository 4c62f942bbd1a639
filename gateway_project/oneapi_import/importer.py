"""Import a one-api or new-api database: channels, users, API keys, prices and redemption codes.

The import touches every app, so it lives in the composition root, one module per what it writes:
users and keys (accounts), channels (channels), prices and redemption codes (money), all through one
Run (run). The source is read with a plain DB-API connection (source), never through Django's
connections, and only with `SELECT *`, so whatever columns a version has are what we see.

Type ids: one-api and new-api agree up to 25 (except 2, 4, 5) but diverge after that (one-api 35 is
Cohere, new-api 35 is MiniMax; one-api 42 is Vertex, new-api 41). Each adaptor declares the numbers it
imports (channels_app.channel_types). The layout is recognised by the columns only new-api has
(auto_ban, status_code_mapping, test_model, ...); `flavour` overrides it.

Idempotence: users match by username, keys and redemption codes by the hash of their secret, channels
by the source id kept in `config["imported_from_oneapi_id"]` (plus the key's line for multi-key
channels), price entries by model name. What already exists is kept unless `update` is set: a second
run must never reset a balance that has moved here since the first.
"""

import contextlib

from django.db import transaction

from gateway_project.oneapi_import.accounts import AccountImport
from gateway_project.oneapi_import.channels import ChannelImport
from gateway_project.oneapi_import.money import MoneyImport
from gateway_project.oneapi_import.run import Report


class Importer(AccountImport, ChannelImport, MoneyImport):
    """Reads everything from `source` and writes it here (in one transaction), or only plans it (dry run)."""

    def run(self) -> Report:
        with contextlib.nullcontext() if self.dry_run else transaction.atomic():
            self.import_users()
            self.import_channels()
            self.import_tokens()
            self.import_redemptions()
        # Outside the transaction: pricing.save tells every instance to reload, which must follow the commit.
        self.import_prices()
        return self.report
