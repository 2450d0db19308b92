"""The server-rendered console (included at the site root from peridio_console/urls.py)."""

from django.urls import path

from binaries import views
from peridio_console import views as account_views

app_name = "console"

urlpatterns = [
    path("artifacts/", views.artifact_list, name="artifact_list"),
    path("artifacts/new", views.artifact_create, name="artifact_create"),
    path("artifacts/<uuid:artifact_id>/", views.artifact_detail, name="artifact_detail"),
    path(
        "artifacts/<uuid:artifact_id>/versions/new",
        views.artifact_version_create,
        name="artifact_version_create",
    ),
    path("versions/<uuid:version_id>/", views.version_detail, name="version_detail"),
    path("versions/<uuid:version_id>/binaries/new", views.binary_new, name="binary_new"),
    path("versions/<uuid:version_id>/binaries", views.binary_create, name="binary_create"),
    path("binaries/<uuid:binary_id>/", views.binary_detail, name="binary_detail"),
    path("binaries/<uuid:binary_id>/progress", views.binary_progress, name="binary_progress"),
    path("binaries/<uuid:binary_id>/reset", views.binary_reset, name="binary_reset"),
    path("binaries/<uuid:binary_id>/destroy", views.binary_destroy, name="binary_destroy"),
    path("binaries/<uuid:binary_id>/signatures", views.binary_sign, name="binary_sign"),
    path(
        "binaries/<uuid:binary_id>/download-url",
        views.binary_download_url,
        name="binary_download_url",
    ),
    path("signing-keys/", views.signing_key_list, name="signing_key_list"),
    path("signing-keys/new", views.signing_key_create, name="signing_key_create"),
    path("signing-keys/<uuid:key_id>/revoke", views.signing_key_revoke, name="signing_key_revoke"),
    path("api-keys/", account_views.api_key_list, name="api_key_list"),
    path("api-keys/new", account_views.api_key_create, name="api_key_create"),
    path("api-keys/<int:key_id>/revoke", account_views.api_key_revoke, name="api_key_revoke"),
    path("members/", account_views.member_list, name="member_list"),
    path("members/new", account_views.member_add, name="member_add"),
    path(
        "members/<int:membership_id>/role",
        account_views.member_change_role,
        name="member_change_role",
    ),
    path("members/<int:membership_id>/remove", account_views.member_remove, name="member_remove"),
    path("audit/", views.audit, name="audit"),
    path("audit/destroyed", views.audit_destroyed, name="audit_destroyed"),
    path("audit/export.csv", views.audit_export, {"format": "csv"}, name="audit_export_csv"),
    path("audit/export.json", views.audit_export, {"format": "json"}, name="audit_export_json"),
]
