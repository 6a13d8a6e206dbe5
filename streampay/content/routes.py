from __future__ import annotations

import functools
import json
import uuid

from flask import current_app, request
from flask.views import MethodView
from flask_jwt_extended import current_user, verify_jwt_in_request
from flask_smorest import Blueprint
from flask_smorest.fields import Upload
from marshmallow import Schema, ValidationError, fields, validate

from streampay.content import service
from streampay.content.delivery import send as _serve
from streampay.content.jobs import enqueue_processing
from streampay.content.schemas import (
    CatalogueQuerySchema,
    ContentSchema,
    ContentUpdateSchema,
    UploadFormSchema,
)
from streampay.errors import NotFound
from streampay.idempotency import idempotent
from streampay.users.access import auth_required
from streampay.users.models import Role


class UploadFileSchema(Schema):
    file = Upload(required=True, metadata={"description": "The audio or video file."})


class UploadSchema(UploadFormSchema, UploadFileSchema):
    """The upload's multipart body as the document states it: the form fields and the file together."""


_PAGING = Blueprint.DEFAULT_PAGINATION_PARAMETERS


class CataloguePageSchema(CatalogueQuerySchema):
    """The catalogue's query with `@blp.paginate()`'s page and page_size (its defaults and bounds), in one load."""

    page = fields.Integer(load_default=_PAGING["page"], validate=validate.Range(min=1))
    page_size = fields.Integer(
        load_default=_PAGING["page_size"], validate=validate.Range(min=1, max=_PAGING["max_page_size"])
    )


blp = Blueprint("content", __name__, description="Media items: upload, catalogue, edit, playback bytes.")
# Anonymous callers may browse; a token, when sent, must be valid.
OPTIONAL_AUTH = {"security": [{}, {"bearerAuth": []}]}
_PAGE_QUERY = CataloguePageSchema()
_PAGE_QUERIES: dict[bytes, tuple[dict, int, int] | None] = {}


def _optional_user():
    verify_jwt_in_request(optional=True)
    return current_user if current_user else None


def _json(body: str):
    return current_app.response_class(body, mimetype="application/json")


@blp.before_request
def catalogue_for_everyone():
    """A page everyone sees alike (no token) is answered here, without the view's argument and pagination machinery:
    the view's own rules in one schema load, then the listing's cache or the database (service.catalogue_page).

    A query those rules refuse goes on to the view, which answers it with its 422 exactly as before.
    """
    if request.method != "GET" or request.endpoint != "content.Catalogue" or "Authorization" in request.headers:
        return None
    parsed = _page_query(request.query_string)
    if parsed is None:
        return None
    query, page, size = parsed
    total, body = service.catalogue_page(None, query, page, size)
    return current_app.response_class(
        body, mimetype="application/json", headers={blp.PAGINATION_HEADER_NAME: _pagination(page, size, total)}
    )


def _page_query(query_string: bytes) -> tuple[dict, int, int] | None:
    """(the query, page, page size) of this request's query string, or None when the rules refuse it: loaded once
    per query string (the parse is a pure function of it), so a page asked again skips it."""
    try:
        return _PAGE_QUERIES[query_string]
    except KeyError:
        pass
    args = request.args
    try:
        query = _PAGE_QUERY.load({name: args[name] for name in _PAGE_QUERY.fields if name in args})
        parsed = query, query.pop("page"), query.pop("page_size")
    except ValidationError:
        parsed = None
    if len(_PAGE_QUERIES) >= 4096:
        _PAGE_QUERIES.clear()
    _PAGE_QUERIES[query_string] = parsed
    return parsed


@functools.lru_cache(maxsize=4096)
def _pagination(page: int, page_size: int, total: int) -> str:
    """X-Pagination as `@blp.paginate()` writes it."""
    return json.dumps(blp._make_pagination_metadata(page, page_size, total))


@blp.route("/")
class Catalogue(MethodView):
    @blp.doc(**OPTIONAL_AUTH)
    @blp.arguments(CatalogueQuerySchema(), location="query")
    @blp.response(200, ContentSchema(many=True))
    @blp.paginate()
    def get(self, query, pagination_parameters):
        """Browse ready, published content; creators also see their own items in any state."""
        page, size = pagination_parameters.page, pagination_parameters.page_size
        pagination_parameters.item_count, body = service.catalogue_page(_optional_user(), query, page, size)
        return _json(body)

    @auth_required(Role.CREATOR, Role.ADMIN)
    @idempotent
    @blp.doc(requestBody={"required": True, "content": {"multipart/form-data": {"schema": UploadSchema}}})
    @blp.arguments(UploadFormSchema, location="form")
    @blp.arguments(UploadFileSchema, location="files")
    @blp.response(201, ContentSchema)
    def post(self, form, files):
        """Upload an audio or video file (multipart). It is `processing` until the media job has checked it."""
        content = service.upload(current_user, form, files["file"])
        enqueue_processing(content)
        return content


@blp.route("/<uuid:content_id>")
class ContentItem(MethodView):
    @blp.doc(**OPTIONAL_AUTH)
    @blp.response(200, ContentSchema)
    def get(self, content_id: uuid.UUID):
        """One item (cached for five minutes, refreshed on every change)."""
        return _json(service.read_json(content_id, _optional_user()))

    @auth_required(Role.CREATOR, Role.ADMIN)
    @blp.arguments(ContentUpdateSchema)
    @blp.response(200, ContentSchema)
    def patch(self, changes, content_id: uuid.UUID):
        """Edit title, description, category, tags, price or publication (the creator or an admin)."""
        return service.update(current_user, content_id, changes)

    @auth_required(Role.CREATOR, Role.ADMIN)
    @blp.response(204)
    def delete(self, content_id: uuid.UUID):
        """Remove from the catalogue (the creator or an admin). Its billing history stays."""
        service.delete(current_user, content_id)


@blp.route("/<uuid:content_id>/media")
@auth_required()
@blp.response(200, description="The media bytes; Range requests answer 206.")
@blp.alt_response(206, description="Partial content for a Range request.")
@blp.alt_response(302, description="Redirect to a short-lived signed URL (S3, IPFS gateway).")
@blp.alt_response(416, description="The requested range is not satisfiable.")
def media(content_id: uuid.UUID):
    """The media bytes, for the creator, an admin, or a viewer allowed to play it."""
    content = service.load_for_playback(content_id, current_user)
    return _serve(content.storage_backend, content.storage_key, content.media_type)


@blp.route("/<uuid:content_id>/thumbnail")
@blp.doc(**OPTIONAL_AUTH)
@blp.response(200, description="A JPEG still from the video.")
@blp.alt_response(302, description="Redirect to a short-lived signed URL.")
def thumbnail(content_id: uuid.UUID):
    """A still from the video (audio-only items have none)."""
    content = service.load(content_id, _optional_user())
    if content.thumbnail_key is None:
        raise NotFound("This item has no thumbnail.")
    return _serve(content.storage_backend, content.thumbnail_key, "image/jpeg")
