"""Argon2id password hashing (memory-hard), with the policy every new password must meet."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Flask, current_app

from streampay.errors import Invalid

MIN_LENGTH, MAX_LENGTH = 8, 128
COMMON = {"password", "password1", "12345678", "123456789", "qwertyuiop", "iloveyou1", "letmein123", "streampay1"}


def init_app(app: Flask) -> None:
    hasher = PasswordHasher(
        time_cost=app.config["PASSWORD_HASH_TIME_COST"], memory_cost=app.config["PASSWORD_HASH_MEMORY_KIB"]
    )
    app.extensions["streampay.hasher"] = hasher


def _dummy_hash() -> str:
    """Compared against when the email is unknown, so a login takes as long either way.

    Made at the first such login, not at start-up: every `flask` command would pay for it.
    """
    extensions = current_app.extensions
    if "streampay.dummy_hash" not in extensions:
        extensions["streampay.dummy_hash"] = _hasher().hash("not-a-real-password-0")
    return extensions["streampay.dummy_hash"]


def _hasher() -> PasswordHasher:
    return current_app.extensions["streampay.hasher"]


def check_policy(password: str, *personal: str) -> None:
    problems = []
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        problems.append(f"Must be {MIN_LENGTH} to {MAX_LENGTH} characters long.")
    if not any(c.isalpha() for c in password) or not any(c.isdigit() for c in password):
        problems.append("Must contain at least one letter and one digit.")
    lowered = password.lower()
    if lowered in COMMON or any(p and len(p) >= 3 and p.lower() in lowered for p in personal):
        problems.append("Too easy to guess: avoid common passwords and your email or username.")
    if problems:
        raise Invalid("The password is too weak.", {"password": problems})


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher().verify(password_hash or _dummy_hash(), password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher().check_needs_rehash(password_hash)
