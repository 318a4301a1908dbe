"""``python -m pytest_gpubench.cli``: the same as the ``pytest-gpubench`` script."""

import sys

from pytest_gpubench.cli.main import main

sys.exit(main())
