"""The compliance console at /audit: local accounts, the audit timeline, record detail, disclosure report.

`web` holds the blueprint and what every page shares (who is signed in, roles,
CSRF, security headers), `login` the sign-in and sign-out, `pages` the pages,
`accounts` and `sessions` the accounts and sessions behind them.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from hub.console import login, pages  # noqa: F401  (their routes join the blueprint)
    from hub.console.web import blueprint

    app.register_blueprint(blueprint)
