"""The outlet agent: domain services, the till HTTP API and the `loyalty` CLI."""
