"""`python -m monitorctl`: the same as the `monitorctl` command."""

from .cli import main

main()
