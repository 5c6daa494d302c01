"""Charter: identity and access management whose configuration is a written access charter."""
