"""xdshub: the Flask application factory.

`create_app` layers settings (defaults, hub.toml, XDSHUB_* variables, test
overrides), attaches the database and registers one blueprint per actor.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app

from hub.settings import Settings, load_settings


def create_app(settings: Settings | None = None, database: Any | None = None) -> Flask:
    from hub import console, db, logs, ops, problems
    from hub.audit import api as audit_api
    from hub.audit import fhir as audit_fhir
    from hub.federation import patients_api
    from hub.federation import responding as xca_responding
    from hub.security import oauth
    from hub.shares import api as shares_api
    from hub.shares import launch, viewer
    from registry import views as registry_views
    from repository import capture_views, studies_api
    from repository import views as repository_views
    from repository.dicomweb import views as dicomweb_views

    settings = settings or load_settings()
    app = Flask(__name__)
    app.config["XDSHUB_SETTINGS"] = settings
    # The largest body any endpoint takes; each endpoint applies its own, smaller limit.
    app.config["MAX_CONTENT_LENGTH"] = max(settings.max_body_bytes, settings.max_upload_bytes)
    app.config["JSON_SORT_KEYS"] = False

    database = database or db.Database(settings.database_url)
    db.init_app(app, database)
    logs.init_app(app)
    ops.init_app(app)
    problems.init_app(app)
    oauth.init_app(app)
    registry_views.init_app(app)
    repository_views.init_app(app)
    xca_responding.init_app(app)
    dicomweb_views.init_app(app)
    capture_views.init_app(app)
    studies_api.init_app(app)
    audit_api.init_app(app)
    audit_fhir.init_app(app)
    console.init_app(app)
    shares_api.init_app(app)
    viewer.init_app(app)
    launch.init_app(app)
    patients_api.init_app(app)
    return app


def get_settings() -> Settings:
    """The settings of the app serving the current request."""
    return current_app.config["XDSHUB_SETTINGS"]  # type: ignore[no-any-return]
