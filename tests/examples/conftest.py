"""Fixtures for the example tests: chromium's ``browser`` and ``new_page`` (support.browser,
shared with tests/browser) for the page test.  Each test's fresh copy of an example module,
``load_example``, is in tests/conftest.py (the LLM relay's test uses it too)."""

from __future__ import annotations

from support.browser import browser, new_page  # noqa: F401 (fixtures for the page test)
