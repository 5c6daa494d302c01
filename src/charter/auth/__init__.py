"""Authentication: passwords, TOTP factors and their recovery, lockout, browser sessions (docs/authentication.md)."""
