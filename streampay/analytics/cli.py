"""`flask analytics fold` and `flask analytics rebuild [--from DATE]`."""

from __future__ import annotations

import json

import click
from flask.cli import AppGroup

from streampay.analytics import fold, rebuild

analytics_cli = AppGroup("analytics")


@analytics_cli.command("fold")
def fold_now() -> None:
    """Fold what sessions appended into the rollups now (the clock does it every minute)."""
    click.echo(json.dumps({"folded": fold.fold()}))


@analytics_cli.command("rebuild")
@click.option(
    "--from",
    "since",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Rebuild from the start of this date's UTC month on (default: all history).",
)
def rebuild_now(since) -> None:
    """Rebuild the rollups from the ledger and the sessions: history from before the usage outbox, or a repair.
    Safe to run again; sessions may stream meanwhile."""
    click.echo(json.dumps(rebuild.rebuild(since.date() if since else None)))
