"""``python -m h3lab ...`` is the ``h3lab`` command."""

import sys

from h3lab.cli import main

sys.exit(main())
