"""Headquarters: the authority over the chain (ledger, master data, bans, sync server)."""
