"""`python -m offload`: the same as the `offload` script."""

from offload.cli.entry import main

main()
