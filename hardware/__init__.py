"""Identification devices: card readers, scanners, keys and caller ID, as normalised reads.

Each reader is a small adapter producing `CardRead`s bound to a till (see
hardware/readers.py for the one entry point the agent uses, and docs/readers.md).
Must never: import the rest of the project (agent, sync, schema, hq) or hold business logic.
"""
