"""``python -m writeback_console.cli``: the same command as ``writeback-console``."""

import sys

from writeback_console.cli import main

sys.exit(main())
