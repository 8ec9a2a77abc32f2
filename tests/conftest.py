"""Shared pytest setup.

``tests`` is a package (see ``tests/__init__.py``), so pytest puts the repository
root on ``sys.path`` and every suite can ``from tests.helpers import ...``.
"""
