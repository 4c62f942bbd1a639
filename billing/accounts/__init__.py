"""Accounts: users, API keys (authentication and management), management access tokens, the login throttle
and rate limits. They say who may spend; the money itself moves in billing.quota."""
