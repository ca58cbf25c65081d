"""``python -m writeback_console.sim``: the simulator on its own, until the main CLI offers ``sim``."""

from __future__ import annotations

import argparse
import sys

from writeback_console.sim.arguments import add_arguments
from writeback_console.sim.cli import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m writeback_console.sim", description="Run the Personify360 simulator."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
