"""hierot's version (semantic versioning; ``CHANGELOG.md`` says what each one changed).

Kept equal to ``version`` in ``pyproject.toml`` (``tests/test_api.py`` reads both).
"""

__version__ = "0.2.0"
