"""HTTP plumbing both services share: error bodies, the server runner, the back-office base.

Sits below `agent` and `hq` and above `schema`: it imports `schema` and web libraries, never
`agent`, `hq` or `sync`, so either service can use it without reaching into the other.
"""
