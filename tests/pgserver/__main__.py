"""``python -m tests.pgserver``: start a server, check it, stop it."""

import sys

from tests.pgserver.smoke import main

sys.exit(main())
