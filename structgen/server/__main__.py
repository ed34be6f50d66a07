"""``python -m structgen.server``: the same as ``structgen serve``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
