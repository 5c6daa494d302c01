"""The directory: users, groups, services, partners, their attributes, owners and lifecycle."""
