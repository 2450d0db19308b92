"""The console's binaries pages (joined with the account pages under the `console` namespace
in peridio_console/urls.py)."""

from django.urls import path

from binaries.console import artifacts, audit, binaries, signing_keys

urlpatterns = [
    path("artifacts/", artifacts.artifact_list, name="artifact_list"),
    path("artifacts/new", artifacts.artifact_create, name="artifact_create"),
    path("artifacts/<uuid:artifact_id>/", artifacts.artifact_detail, name="artifact_detail"),
    path(
        "artifacts/<uuid:artifact_id>/versions/new",
        artifacts.artifact_version_create,
        name="artifact_version_create",
    ),
    path("artifacts/<uuid:artifact_id>/edit", artifacts.artifact_edit, name="artifact_edit"),
    path("artifacts/<uuid:artifact_id>/delete", artifacts.artifact_delete, name="artifact_delete"),
    path("versions/<uuid:version_id>/", artifacts.version_detail, name="version_detail"),
    path("versions/<uuid:version_id>/edit", artifacts.version_edit, name="version_edit"),
    path("versions/<uuid:version_id>/delete", artifacts.version_delete, name="version_delete"),
    path("versions/<uuid:version_id>/binaries/new", binaries.binary_new, name="binary_new"),
    path("versions/<uuid:version_id>/binaries", binaries.binary_create, name="binary_create"),
    path("binaries/<uuid:binary_id>/", binaries.binary_detail, name="binary_detail"),
    path("binaries/<uuid:binary_id>/progress", binaries.binary_progress, name="binary_progress"),
    path("binaries/<uuid:binary_id>/reset", binaries.binary_reset, name="binary_reset"),
    path("binaries/<uuid:binary_id>/destroy", binaries.binary_destroy, name="binary_destroy"),
    path("binaries/<uuid:binary_id>/signatures", binaries.binary_sign, name="binary_sign"),
    path(
        "binaries/<uuid:binary_id>/signatures/<uuid:signature_id>/remove",
        binaries.signature_remove,
        name="signature_remove",
    ),
    path("binaries/<uuid:binary_id>/download", binaries.binary_download, name="binary_download"),
    path(
        "binaries/<uuid:binary_id>/download-url",
        binaries.binary_download_url,
        name="binary_download_url",
    ),
    path("signing-keys/", signing_keys.signing_key_list, name="signing_key_list"),
    path("signing-keys/new", signing_keys.signing_key_create, name="signing_key_create"),
    path(
        "signing-keys/<uuid:key_id>/revoke",
        signing_keys.signing_key_revoke,
        name="signing_key_revoke",
    ),
    path("audit/", audit.audit, name="audit"),
    path("audit/destroyed", audit.audit_destroyed, name="audit_destroyed"),
    path("audit/export.csv", audit.audit_export, {"format": "csv"}, name="audit_export_csv"),
    path("audit/export.json", audit.audit_export, {"format": "json"}, name="audit_export_json"),
]
