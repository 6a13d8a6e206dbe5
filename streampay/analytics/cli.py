"""`flask analytics fold` and `flask analytics rebuild [--from DATE]`."""

from __future__ import annotations

import json

import click
from flask.cli import AppGroup
from marshmallow import ValidationError

from streampay.analytics import fold, rebuild, schemas

analytics_cli = AppGroup("analytics")


@analytics_cli.command("fold")
def fold_now() -> None:
    """Fold what sessions appended into the rollups now (the clock does it every minute)."""
    click.echo(json.dumps({"folded": fold.fold()}))


def _day(ctx, param, value):
    """A --from within the days analytics can name (as the API's `from`), else a usage error, not a traceback."""
    if value is None:
        return None
    try:
        return schemas.DAYS(value.date())
    except ValidationError as exc:
        raise click.BadParameter(" ".join(exc.messages)) from exc


@analytics_cli.command("rebuild")
@click.option(
    "--from",
    "since",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    callback=_day,
    help="Rebuild from the start of this date's UTC month on (default: all history), from 1970-01-01 to 2999-12-31.",
)
def rebuild_now(since) -> None:
    """Rebuild the rollups from the ledger and the sessions: history from before the usage outbox, or a repair.
    Safe to run again; sessions may stream meanwhile."""
    click.echo(json.dumps(rebuild.rebuild(since)))
