"""`python -m benchmarks.peers`: see benchmarks/peers/run.py and benchmarks/README.md."""

import sys

from benchmarks.peers.run import main

sys.exit(main())
