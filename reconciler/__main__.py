"""`python -m reconciler`: the command line (see `reconciler.cli`)."""

from reconciler.cli.main import main

main()
