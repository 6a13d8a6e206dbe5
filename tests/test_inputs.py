"""Hostile or malformed bodies get a 4xx in the one error shape, before any route spends effort on them."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streampay.inputs import MAX_JSON_DEPTH, HostileInput, check, loads
from tests.conftest import bearer, register
from tests.test_errors import error_of

LOGIN = "/api/v1/auth/login"


def post_raw(client, path: str, body: str, **kwargs):
    return client.post(path, data=body.encode("utf-8", "surrogatepass"), content_type="application/json", **kwargs)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("[" * 1000 + "]" * 1000, "nested"),
        ("[" * 100_000 + "]" * 100_000, "nested"),
        ('{"a":' * 1000 + "1" + "}" * 1000, "nested"),
        ('{"email": "a\\ud800@example.com", "password": "x"}', "surrogate"),
        ('{"email": "a@example.com", "password": "\\udfff"}', "surrogate"),
        ('{"\\ud83d": 1, "email": "a@example.com", "password": "x"}', "surrogate"),
        ('{"email": "a@example.com", "password": NaN}', "NaN"),
        ('{"email": "a@example.com", "password": -Infinity}', "Infinity"),
        ('{"email": "a@example.com", "password": ' + "9" * 5000 + "}", "too long"),
    ],
    ids=[
        "deep-lists",
        "very-deep",
        "deep-objects",
        "surrogate",
        "low-surrogate",
        "surrogate-key",
        "nan",
        "inf",
        "bigint",
    ],
)
def test_hostile_json_is_422(client, body, says):
    body_422 = error_of(post_raw(client, LOGIN, body), 422)
    assert says in body_422["message"]


def test_hostile_json_is_422_on_authenticated_routes_too(client):
    viewer = register(client)
    reply = client.patch(
        "/api/v1/users/me",
        data=b'{"bio": "\\ud800"}',
        content_type="application/json",
        headers=bearer(viewer["access_token"]),
    )
    error_of(reply, 422)


def test_malformed_json_stays_400(client):
    error_of(post_raw(client, LOGIN, '{"email": '), 400)


def test_a_json_body_past_max_json_bytes_is_413(app_factory):
    client = app_factory(MAX_JSON_BYTES=2048).test_client()
    body = error_of(client.post(LOGIN, json={"email": "a@example.com", "password": "x" * 4000}), 413)
    assert "2048" in body["message"]
    # Just under the limit it is read (and judged on its merits).
    assert client.post(LOGIN, json={"email": "a@example.com", "password": "x" * 100}).status_code == 401


def test_a_streamed_body_without_length_is_cut_at_max_json_bytes(app_factory):
    client = app_factory(MAX_JSON_BYTES=2048).test_client()
    body = b'{"email": "a@example.com", "password": "' + b"x" * 8000 + b'"}'
    reply = client.post(
        LOGIN,
        input_stream=io.BytesIO(body),
        content_type="application/json",
        environ_overrides={"wsgi.input_terminated": True},
    )
    error_of(reply, 413)


def test_uploads_are_not_held_to_the_json_limit(app_factory):
    client = app_factory(MAX_JSON_BYTES=2048).test_client()
    creator = register(client, role="creator")
    reply = client.post(
        "/api/v1/content/",
        data={"title": "t", "price_per_second": "0.0100000", "file": (io.BytesIO(b"\0" * 50_000), "x.mp4")},
        headers=bearer(creator["access_token"]),
        content_type="multipart/form-data",
    )
    assert reply.status_code != 413, reply.json
    assert 400 <= reply.status_code < 500


# Any JSON value, with lone surrogates among its strings and nesting past the limit within reach.
_TEXT = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0xFFFF, exclude_categories=()))
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | _TEXT,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_TEXT, children, max_size=3),
    max_leaves=80,
)


def _deep(value, levels: int):
    for _ in range(levels):
        value = [value]
    return value


@settings(max_examples=300, deadline=None)
@given(
    value=_JSON,
    levels=st.sampled_from([0, 1, MAX_JSON_DEPTH - 2, MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH]),
    ascii_only=st.booleans(),
    as_bytes=st.booleans(),
)
def test_loads_refuses_exactly_what_the_full_walk_refuses(value, levels, ascii_only, as_bytes):
    """The scan of the text that lets most documents skip the walk never lets a hostile one through."""
    value = _deep(value, levels)
    text = json.dumps(value, ensure_ascii=ascii_only)
    data = text.encode("utf-8", "surrogatepass") if as_bytes else text
    try:
        check(value)
        hostile = False
    except HostileInput:
        hostile = True
    try:
        assert loads(data) == value
        refused = False
    except HostileInput:
        refused = True
    assert refused == hostile
