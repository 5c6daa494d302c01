"""Enforcement where the requests are (docs/enforcement.md): one decision path for the ASGI middleware and
`charter proxy`.

- `routes`: the declared mapping of route patterns and methods to an action and a resource template (pure);
- `cache`: decisions remembered per revision, never past a decision's `until` (pure);
- `gate`: a request's method, path and bearer token -> allow or the 401/403/503 to answer, from a local
  replica (charter.sdk.replica); deny by default on anything unexpected;
- `reporter`: the decisions made, posted in batches to the server's decision log;
- `middleware`, `proxy`: the two edges.
"""
