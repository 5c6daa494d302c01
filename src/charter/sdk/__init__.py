"""The SDK's parts that keep state in the application's process: the local replica (charter.sdk.replica).

The HTTP client is `charter.client`; enforcement (route mapping, decision cache, middleware, proxy) is
`charter.enforce`.
"""
