"""The embedded runtime: one engine fed from files or HTTP, a durable log and rocksdict state."""
