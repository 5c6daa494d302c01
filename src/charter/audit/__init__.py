"""The audit trail: a hash-chained, append-only log with signed checkpoints; verify and export."""
