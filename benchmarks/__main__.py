"""``python -m benchmarks``: the benchmark runner (same as ``routeq bench``)."""

import sys

from benchmarks.runner import main

sys.exit(main())
