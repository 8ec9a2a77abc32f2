"""Shared pytest setup.

``tests`` is a package (see ``tests/__init__.py``), so pytest puts the repository
root on ``sys.path`` and every suite can ``from tests.helpers import ...``.
"""

from collections.abc import Iterator

import pytest
from hypothesis import settings

from tests.tally import write_report

# The machines are shared and noisy: no per-example deadline anywhere (an
# example taking 300 ms under load is not a bug). Tests may still set their own.
settings.register_profile("routeq", deadline=None)
settings.load_profile("routeq")


@pytest.fixture(scope="session", autouse=True)
def _reliability_report() -> Iterator[None]:
    yield
    write_report()
