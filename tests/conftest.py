"""Shared pytest setup.

``tests`` is a package (see ``tests/__init__.py``), so pytest puts the repository
root on ``sys.path`` and every suite can ``from tests.helpers import ...``.
"""

from hypothesis import settings

# The machines are shared and noisy: no per-example deadline anywhere (an
# example taking 300 ms under load is not a bug). Tests may still set their own.
settings.register_profile("routeq", deadline=None)
settings.load_profile("routeq")
