"""Payments: quota bought with WeChat Pay (top-up orders) or redemption codes. Each credit writes its ledger row
(billing.ledger) in the transaction that moves the quota."""
