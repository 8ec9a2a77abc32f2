"""routeq schemas."""
