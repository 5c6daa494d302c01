"""`python -m charter` runs the command line."""

from charter.cli.main import main

main()
