"""``python -m shipyard.edge DIR input.csv``: see :mod:`shipyard.edge.runner`."""

import sys

from shipyard.edge.runner import main

sys.exit(main())
