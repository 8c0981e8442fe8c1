"""Sans-IO core tests (a package, so their module names do not collide with tests/e2e)."""
