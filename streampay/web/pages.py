"""Serves the pages at /app/ (and sends / there); WEB_PAGES_ENABLED=false turns them off.

One HTML page loads JavaScript modules that speak only the documented API and WebSocket;
nothing here is private to them. The page carries the few settings a player needs to pace itself.
"""

from __future__ import annotations

from flask import Blueprint, Flask, current_app, redirect, render_template, url_for

blp = Blueprint(
    "web",
    __name__,
    static_folder="static",
    static_url_path="/static",
    template_folder="templates",
)


@blp.route("/")
def index():
    cfg = current_app.config
    return render_template(
        "web/index.html",
        api_prefix=cfg["API_PREFIX"],
        heartbeat_seconds=cfg["HEARTBEAT_INTERVAL_SECONDS"],
    )


def home():
    return redirect(url_for("web.index"), code=302)


def init_app(app: Flask) -> None:
    if not app.config["WEB_PAGES_ENABLED"]:
        return
    app.register_blueprint(blp, url_prefix="/app")
    app.add_url_rule("/", "home", home)
