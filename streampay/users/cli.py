from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import select

from streampay.errors import DomainError
from streampay.extensions import db
from streampay.users import service
from streampay.users.models import Role, User

users_cli = AppGroup("users")


@users_cli.command("create")
@click.argument("email")
@click.option("--username", required=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--role", type=click.Choice([r.value for r in Role]), default=Role.VIEWER.value, show_default=True)
def create(email: str, username: str, password: str, role: str) -> None:
    """Create an account; admins can only be made here or by another admin."""
    try:
        user = service.create_user(email, username, password, Role(role))
    except DomainError as exc:
        details = "; ".join(f"{k}: {' '.join(v)}" for k, v in (exc.errors or {}).items())
        raise click.ClickException(f"{exc.message} {details}".strip()) from exc
    click.echo(f"created {user.role.value} {user.email} ({user.id})")


@users_cli.command("list")
@click.option("--role", type=click.Choice([r.value for r in Role]))
def list_users(role: str | None) -> None:
    """Every account, newest first."""
    stmt = select(User).order_by(User.created_at.desc())
    if role:
        stmt = stmt.where(User.role == Role(role))
    for user in db.session.scalars(stmt):
        state = "active" if user.is_active else "deactivated"
        click.echo(f"{user.id}  {user.email:<32} {user.username:<20} {user.role.value:<8} {state}")
