"""The composition root: the `loyalty` command, wiring the outlet (agent/) and headquarters
(hq/) together. Everything may be imported here; nothing imports this package."""
