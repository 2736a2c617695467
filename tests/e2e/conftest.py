"""Browser journeys use the `browser`, `page` and `no_js_page` fixtures of tests/conftest.py."""
