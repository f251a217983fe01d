"""``python -m shipyard.cli``: the ``shipyard`` command without the console script."""

from shipyard.cli import main

main()
