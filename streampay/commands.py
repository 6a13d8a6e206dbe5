"""The `flask` commands of every domain, each imported only when it runs.

`flask --help` lists them from the table below; a command's module (and what it imports: the Stellar
SDK, PyAV, Alembic) loads when that command, or its help, is asked for. So `flask ledger check` does
not pay for the Stellar SDK, nor `flask users list` for Alembic.
"""

from __future__ import annotations

from collections.abc import Callable

import click
from flask import Flask
from flask.cli import FlaskGroup
from werkzeug.utils import import_string

from streampay.extensions import migrations

# name, where the command is, its help (the groups take theirs from here)
COMMANDS = (
    ("users", "streampay.users.cli:users_cli", "Create and list accounts."),
    ("content", "streampay.content.cli:content_cli", "Inspect and reprocess media items."),
    (
        "seed",
        "streampay.content.cli:seed",
        "Create a demo creator, a demo viewer and a few real (generated) media items.",
    ),
    (
        "wallet",
        "streampay.ledger.cli:wallet_cli",
        "Operator credits and debits of a viewer's wallet (audited postings).",
    ),
    ("ledger", "streampay.ledger.cli:ledger_cli", "Check the ledger's invariants."),
    ("stellar", "streampay.stellar.cli:stellar_cli", "Keys, funding and the custody account."),
    ("deposits", "streampay.stellar.cli:deposits_cli", "Credit on-chain deposits."),
    ("payouts", "streampay.stellar.cli:payouts_cli", "Pay creators on Stellar."),
    (
        "analytics",
        "streampay.analytics.cli:analytics_cli",
        "Fold the usage outbox, or rebuild the rollups from the ledger.",
    ),
)


class Deferred(click.Command):
    """Stands in for a command (or a group) until it runs: then the real one parses and runs."""

    def __init__(self, name: str, load: Callable[[], click.Command], help: str):
        super().__init__(name, help=help)
        self._load = load
        self._command: click.Command | None = None

    def command(self) -> click.Command:
        if self._command is None:
            self._command = self._load()
            self._command.help = self._command.help or self.help
        return self._command

    def make_context(self, info_name, args, parent=None, **extra):
        return self.command().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx: click.Context):
        return self.command().invoke(ctx)

    def shell_complete(self, ctx, incomplete):
        return self.command().shell_complete(ctx, incomplete)


def _migrate_group(app: Flask) -> click.Command:
    migrations(app)
    from flask_migrate.cli import db as group

    return group


def finding_a_command() -> bool:
    """True while `flask` builds the app to list its commands or to find the one typed (`flask --help`, `flask
    ledger check`): that app runs a command and serves nothing. `flask run`, `shell`, `routes` and the plugins'
    commands build theirs inside their own command."""
    ctx = click.get_current_context(silent=True)
    return ctx is not None and isinstance(ctx.command, FlaskGroup)


def init_app(app: Flask) -> None:
    for name, where, text in COMMANDS:
        app.cli.add_command(Deferred(name, lambda where=where: import_string(where), text))
    app.cli.add_command(Deferred("db", lambda: _migrate_group(app), "Perform database migrations."))
