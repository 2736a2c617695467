"""The Loyalty Partner Platform: the partner portal and the signed loyalty API in one Flask app.

The package itself imports nothing heavy: `import portal.domain.ledger` loads no Flask.
`create_app` (in portal.app) builds the web application.
"""

from __future__ import annotations

__version__ = "0.1.0"


def create_app(config: dict | None = None, *, create: bool = True):
    """Build the Flask app (see `portal.app.create_app`)."""
    from portal.app import create_app as build

    return build(config, create=create)
