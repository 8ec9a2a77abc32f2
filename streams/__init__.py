"""routeq streams."""
