"""``python -m testbench.formal [--quick] [names...]``: prove the properties, print a table."""
import sys

from .report import main

sys.exit(main())
