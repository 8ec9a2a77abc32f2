"""routeq simulators."""
