"""`python -m peftbench.cli`: the same entry point as the `peftbench` command."""

from peftbench.cli.app import main

main()
