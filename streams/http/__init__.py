"""routeq over HTTP: the app and its routes, auth, ingest, streams, webhooks, metrics."""
