"""routeq simulators."""

import schemas  # noqa: F401  (first: it picks the compiled or the pure core)
