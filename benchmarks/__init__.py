"""routeq benchmarks."""
