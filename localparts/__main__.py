"""`python -m localparts` runs the `streamtrain-local` command."""

import sys

from localparts.cli import main

sys.exit(main())
