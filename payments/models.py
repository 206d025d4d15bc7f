"""Payments: the ledger, funding, payouts and disputes arrive with the money issue."""
