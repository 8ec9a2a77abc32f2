"""routeq schemas: the input and output contract in code."""

from schemas import native

# before any module of the core loads: compiled or pure (schemas/native.py)
native.install()
