"""The console's account pages: API keys and members (under the `console` namespace)."""

from django.urls import path

from peridio_console.accounts import views

urlpatterns = [
    path("api-keys/", views.api_key_list, name="api_key_list"),
    path("api-keys/new", views.api_key_create, name="api_key_create"),
    path("api-keys/<int:key_id>/revoke", views.api_key_revoke, name="api_key_revoke"),
    path("members/", views.member_list, name="member_list"),
    path("members/new", views.member_add, name="member_add"),
    path(
        "members/<int:membership_id>/role",
        views.member_change_role,
        name="member_change_role",
    ),
    path("members/<int:membership_id>/remove", views.member_remove, name="member_remove"),
]
