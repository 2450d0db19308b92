"""The console's account pages: API keys, members and invitations (under the `console`
namespace). Invitations are named in the form, not the path, as the switcher names its
organization."""

from django.urls import path

from peridio_console.accounts import views

urlpatterns = [
    path("api-keys/", views.api_key_list, name="api_key_list"),
    path("api-keys/new", views.api_key_create, name="api_key_create"),
    path("api-keys/<int:key_id>/revoke", views.api_key_revoke, name="api_key_revoke"),
    path("members/", views.member_list, name="member_list"),
    path("members/invite", views.member_invite, name="member_invite"),
    path("members/invitations/cancel", views.invitation_cancel, name="invitation_cancel"),
    path(
        "members/<int:membership_id>/role",
        views.member_change_role,
        name="member_change_role",
    ),
    path("members/<int:membership_id>/remove", views.member_remove, name="member_remove"),
    path("invitations/", views.invitation_list, name="invitation_list"),
    path("invitations/accept", views.invitation_accept, name="invitation_accept"),
    path("invitations/decline", views.invitation_decline, name="invitation_decline"),
]
