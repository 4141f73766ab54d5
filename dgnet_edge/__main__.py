"""`python -m dgnet_edge` (what torchrun launches with `-m dgnet_edge`)."""

from dgnet_edge.cli.main import main

main()
