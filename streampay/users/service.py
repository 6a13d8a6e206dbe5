"""Users: creation, profile changes, and what admins may do to accounts."""

from __future__ import annotations

from flask import current_app
from marshmallow import ValidationError
from sqlalchemy import Select, or_, select
from sqlalchemy.exc import IntegrityError

from streampay.dbtypes import utcnow
from streampay.errors import Conflict, Invalid, NotFound
from streampay.extensions import db
from streampay.inputs import check_text
from streampay.users import passwords, signals
from streampay.users.models import Role, User
from streampay.users.schemas import EMAIL, USERNAME


def like_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, with %, _ and \\ taken literally (use escape='\\')."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _check_identity(email: str, username: str) -> None:
    """The API's schema rules, here too so the CLI cannot create an account that could never sign in."""
    errors = {}
    for field, value, rule in (("email", email, EMAIL), ("username", username, USERNAME)):
        try:
            rule(value)
        except ValidationError as exc:
            errors[field] = exc.messages
    if errors:
        raise Invalid("That email or username is not valid.", errors)


def _taken(email: str | None = None, username: str | None = None, exclude: User | None = None) -> None:
    clauses = []
    if email is not None:
        clauses.append(User.email == email)
    if username is not None:
        clauses.append(User.username == username)
    stmt = select(User.email, User.username).where(or_(*clauses))
    if exclude is not None:
        stmt = stmt.where(User.id != exclude.id)
    errors = {}
    for row in db.session.execute(stmt):
        if email is not None and row.email == email:
            errors["email"] = ["Already registered."]
        if username is not None and row.username == username:
            errors["username"] = ["Already taken."]
    if errors:
        raise Conflict("That email or username is already in use.", errors)


def _commit_unique() -> None:
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        # Lost a race with another request for the same email or username.
        raise Conflict("That email or username is already in use.") from exc


def create_user(
    email: str, username: str, password: str, role: Role = Role.VIEWER, display_name: str | None = None
) -> User:
    email, username = email.strip().lower(), username.strip().lower()
    for field, value in (("email", email), ("username", username), ("password", password)):
        check_text(value, field)
    _check_identity(email, username)
    passwords.check_policy(password, email.split("@")[0], username)
    _taken(email=email, username=username)
    user = User(
        email=email,
        username=username,
        password_hash=passwords.hash_password(password),
        role=role,
        display_name=display_name,
    )
    db.session.add(user)
    _commit_unique()
    return user


def find_by_email(email: str) -> User | None:
    """The account with this email (any case), for operator commands; text that is not text is Invalid."""
    check_text(email, "email")
    return db.session.scalar(select(User).where(User.email == email.strip().lower()))


def get_user(user_id) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound("No such user.")
    return user


def update_profile(user: User, changes: dict) -> User:
    shown_as = (user.display_name, user.username)
    if "username" in changes:
        changes["username"] = changes["username"].strip().lower()
        _taken(username=changes["username"], exclude=user)
        user.username = changes["username"]
    for field in ("display_name", "bio"):
        if field in changes:
            setattr(user, field, changes[field])
    if "email_notifications" in changes:
        wanted = {**user.email_notifications, **changes["email_notifications"]}
        user.email_opt_outs = sorted(kind for kind, on in wanted.items() if not on)
    if "password" in changes:
        if not passwords.verify(user.password_hash, changes.get("current_password") or ""):
            raise Invalid("The current password is wrong.", {"current_password": ["Does not match."]})
        passwords.check_policy(changes["password"], user.email.split("@")[0], user.username)
        user.password_hash = passwords.hash_password(changes["password"])
    elif "current_password" in changes:
        raise Invalid("current_password is only needed to change the password.", {"password": ["Missing."]})
    _commit_unique()
    if (user.display_name, user.username) != shown_as:
        signals.renamed.send(current_app._get_current_object(), user_id=user.id)
    return user


def admin_update(admin: User, user: User, changes: dict) -> User:
    if user.id == admin.id and (changes.get("is_active") is False or changes.get("role", "admin") != "admin"):
        raise Conflict("Admins cannot deactivate or demote themselves; ask another admin.")
    before = (user.role, user.is_active)
    if "role" in changes:
        user.role = Role(changes["role"])
    if "is_active" in changes:
        user.is_active = changes["is_active"]
    if before[1] and not user.is_active:
        signals.deactivating.send(current_app._get_current_object(), user_id=user.id)
    db.session.commit()
    if user.role != before[0] or (before[1] and not user.is_active):
        # Open sockets were authorised as the account was: they close, and their streams end.
        why = "deactivated" if not user.is_active else "role_changed"
        signals.access_revoked.send(current_app._get_current_object(), user_id=str(user.id), sign_in=None, why=why)
    return user


def search_users(search: str | None = None, role: str | None = None, is_active: bool | None = None) -> Select:
    stmt = select(User).order_by(User.created_at.desc(), User.id)
    if search:
        pattern = like_pattern(search.strip().lower())
        stmt = stmt.where(or_(User.email.like(pattern, escape="\\"), User.username.like(pattern, escape="\\")))
    if role:
        stmt = stmt.where(User.role == Role(role))
    if is_active is not None:
        stmt = stmt.where(User.is_active == is_active)
    return stmt


def record_login(user: User, password: str) -> None:
    user.last_login_at = utcnow()
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    db.session.commit()
