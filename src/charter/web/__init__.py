"""The HTTP edge: AuthZEN decisions, the admin API. Translates and delegates; holds no rules."""
