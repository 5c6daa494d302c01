"""The `charter` command line: translates arguments and output, delegates to the services."""
