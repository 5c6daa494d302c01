"""The OAuth 2.0 / OpenID Connect provider: clients, signing keys, tokens and their verification (docs/oidc.md)."""
