from __future__ import annotations

import uuid

from flask.views import MethodView
from flask_jwt_extended import current_user
from flask_smorest import Blueprint

from streampay.pagination import page_of
from streampay.users import service
from streampay.users.access import auth_required
from streampay.users.models import Role
from streampay.users.schemas import AdminUserUpdateSchema, ProfileUpdateSchema, UserQuerySchema, UserSchema

blp = Blueprint("users", __name__, description="Your own profile; accounts, for admins.")


@blp.route("/me")
class Me(MethodView):
    decorators = [auth_required()]

    @blp.response(200, UserSchema)
    def get(self):
        """Your profile."""
        return current_user

    @blp.arguments(ProfileUpdateSchema)
    @blp.response(200, UserSchema)
    def patch(self, changes):
        """Change your username, display name, bio or password (with current_password)."""
        return service.update_profile(current_user, changes)


@blp.route("/")
class Users(MethodView):
    decorators = [auth_required(Role.ADMIN)]

    @blp.arguments(UserQuerySchema, location="query")
    @blp.response(200, UserSchema(many=True))
    @blp.paginate()
    def get(self, query, pagination_parameters):
        """List and search accounts (admin)."""
        return page_of(service.search_users(**query), pagination_parameters)


@blp.route("/<uuid:user_id>")
class UserById(MethodView):
    decorators = [auth_required(Role.ADMIN)]

    @blp.response(200, UserSchema)
    def get(self, user_id: uuid.UUID):
        """One account (admin)."""
        return service.get_user(user_id)

    @blp.arguments(AdminUserUpdateSchema)
    @blp.response(200, UserSchema)
    def patch(self, changes, user_id: uuid.UUID):
        """Change an account's role or deactivate it (admin). A deactivated user's tokens stop at once."""
        return service.admin_update(current_user, service.get_user(user_id), changes)
