"""``python -m dap``: see :mod:`dap.cli` (``python -m dap --help`` lists the commands)."""

import sys

from dap.cli import main

if __name__ == "__main__":
    sys.exit(main())
