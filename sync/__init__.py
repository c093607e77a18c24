"""Sync between outlets and headquarters: protocol, transports and the modem link."""
