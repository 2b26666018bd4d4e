"""``python -m chord`` is the ``chord`` command (``torchrun ... -m chord flow ...`` uses this)."""

import sys

from chord.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
