"""``python -m sockscope``."""

import sys

from sockscope.cli import main

sys.exit(main())
