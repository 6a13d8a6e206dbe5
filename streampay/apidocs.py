"""Swagger UI's own files, served by the app from the swagger-ui-bundle package: /api/docs needs no CDN."""

from __future__ import annotations

from flask import Blueprint, Flask, send_from_directory
from swagger_ui_bundle import swagger_ui_path

ASSETS = "/api/docs/assets/"
blp = Blueprint("swagger_ui_assets", __name__)


@blp.route(ASSETS + "<path:filename>")
def asset(filename: str):
    return send_from_directory(swagger_ui_path, filename, max_age=86400)


def init_app(app: Flask) -> None:
    app.register_blueprint(blp)
