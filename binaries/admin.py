"""The Django admin of the domain: support staff find any binary, read its whole record and
timeline, edit what a client may edit, and destroy or reset through the lifecycle."""

import json
import uuid
from typing import Any

from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from binaries import moves, services, signatures, timeline
from binaries.models import (
    Artifact,
    ArtifactVersion,
    Binary,
    BinaryEvent,
    BinarySignature,
    SigningKey,
)
from peridio_console.accounts.actors import Actor
from peridio_console.accounts.admin import (
    CleanedForm,
    ObjectActions,
    ReadOnlyAdmin,
    ServiceAdmin,
    plural,
    refuse_if_revoked,
    staff_action,
)
from peridio_console.core.prn import MalformedPRN, parse_prn

EDITABLE_TEXT = ("description", "custom_metadata")


def _form(*fields: str) -> type[CleanedForm]:
    """A change form checking `fields` with the rules the API applies to them."""
    return type("Form", (CleanedForm,), {"cleaners": {f: services.CLEANERS[f] for f in fields}})


@admin.register(Artifact)
class ArtifactAdmin(ServiceAdmin):
    list_display = ["name", "organization", "created_at"]
    list_filter = ["organization"]
    list_select_related = ["organization"]
    search_fields = ["name", "uuid"]
    fields = ["name", "description", "custom_metadata", "prn", "organization", "created_at"]
    editable = ("name", *EDITABLE_TEXT)
    form = _form(*editable)

    def apply(self, obj: Artifact, values: dict[str, Any], actor: Actor) -> None:
        services.artifact_update(artifact=obj, actor=actor, **values)


@admin.register(ArtifactVersion)
class ArtifactVersionAdmin(ServiceAdmin):
    list_display = ["version", "artifact", "organization", "created_at"]
    list_filter = ["organization"]
    list_select_related = ["organization", "artifact"]
    search_fields = ["version", "artifact__name", "uuid"]
    fields = ["version", "artifact", "description", "custom_metadata", "prn", "created_at"]
    editable = EDITABLE_TEXT
    form = _form(*editable)

    def apply(self, obj: ArtifactVersion, values: dict[str, Any], actor: Actor) -> None:
        services.artifact_version_update(artifact_version=obj, actor=actor, **values)


def _sha256(value: str | None) -> str:
    return f"sha256:{value}" if value else "—"


def _binary_search(term: str) -> Q | None:
    """The forms support staff paste: a PRN (the binary's, or its version's, artifact's,
    signature's or part's), a UUID, sha256:<hex> or a bare run of hex digits (a prefix of the
    declared or verified hash). None: search the text fields instead."""
    if term.lower().startswith("prn:"):
        prn = parse_prn(term)  # MalformedPRN names what was expected
        column = {
            "binary": "uuid",
            "artifact_version": "artifact_version__uuid",
            "artifact": "artifact_version__artifact__uuid",
            "binary_signature": "signatures__uuid",
            "binary_part": "parts__uuid",
            "signing_key": "signatures__signing_key__uuid",
        }.get(prn.type)
        found = Q(organization__uuid=prn.organization)
        return found & Q(**{column: prn.id}) if column else found
    digits = term[7:] if term.lower().startswith("sha256:") else term
    by_hash = None
    if len(digits) >= 6 and all(c in "0123456789abcdefABCDEF" for c in digits):
        digits = digits.lower()
        by_hash = Q(hash__startswith=digits) | Q(verified_hash__startswith=digits)
    elif digits is not term:
        raise MalformedPRN(
            f"{term!r} is not a hash: after sha256: come at least 6 of its hex digits."
        )
    try:
        as_uuid = uuid.UUID(term)
    except ValueError:
        return by_hash
    return Q(uuid=as_uuid) | (by_hash or Q(pk__in=[]))


@admin.register(Binary)
class BinaryAdmin(ObjectActions, ServiceAdmin):
    """Only the description and custom metadata are edited here (as through the API); the
    content's hash, size and target, the state and the verification belong to the lifecycle,
    and its moves are the actions, each asking why."""

    list_display = [
        "prn",
        "artifact_and_version",
        "target",
        "state",
        "size_shown",
        "created_at",
    ]
    list_display_links = ["prn"]
    list_filter = ["state", "organization"]
    list_select_related = ["organization", "artifact_version__artifact"]
    search_fields = ["target", "artifact_version__version", "artifact_version__artifact__name"]
    search_help_text = (
        "A PRN, a UUID, sha256:<hex> or the first hex digits of the hash, a target, a version "
        "or an artifact's name."
    )
    fieldsets = [
        (None, {"fields": ["prn", "artifact_and_version", "organization", "target", "state"]}),
        ("Editable", {"fields": list(EDITABLE_TEXT)}),
        (
            "Content (declared by the client, checked by the verification)",
            {
                "fields": [
                    "hash_shown",
                    "size_shown",
                    "verified_hash_shown",
                    "last_error",
                    "integrity_failed_at",
                    "signatures_shown",
                ]
            },
        ),
        ("Times", {"fields": ["created_at", "updated_at", "content_deleted_at"]}),
        ("Timeline", {"fields": ["timeline"]}),
    ]
    editable = EDITABLE_TEXT
    form = _form(*editable)
    actions = ["destroy", "reset_to_uploadable"]
    object_actions = {"destroy": "Destroy…", "reset_to_uploadable": "Reset to uploadable…"}

    def apply(self, obj: Binary, values: dict[str, Any], actor: Actor) -> None:
        services.binary_update(binary=obj, actor=actor, **values)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Binary], search_term: str
    ) -> tuple[QuerySet[Binary], bool]:
        term = search_term.strip()
        try:
            exact = _binary_search(term)
        except MalformedPRN as exc:
            messages.error(request, f"Search: {exc}")
            return queryset.none(), False
        if exact is None:
            return super().get_search_results(request, queryset, search_term)
        # A run of digits may be a version too (2024061): both kinds of match are shown.
        by_text, _ = super().get_search_results(request, queryset, search_term)
        return (queryset.filter(exact) | by_text).distinct(), True

    @admin.display(description="PRN", ordering="uuid")
    def prn(self, obj: Binary) -> str:
        return obj.prn

    @admin.display(description="artifact / version", ordering="artifact_version__artifact__name")
    def artifact_and_version(self, obj: Binary) -> str:
        return f"{obj.artifact_version.artifact.name} / {obj.artifact_version.version}"

    @admin.display(description="size", ordering="size")
    def size_shown(self, obj: Binary) -> str:
        if obj.size is None:
            return "—"
        return format_html('<span title="{} bytes">{}</span>', obj.size, filesizeformat(obj.size))

    @admin.display(description="hash (declared)")
    def hash_shown(self, obj: Binary) -> str:
        return _sha256(obj.hash)

    @admin.display(description="hash (verified)")
    def verified_hash_shown(self, obj: Binary) -> str:
        return _sha256(obj.verified_hash)

    @admin.display(description="signatures")
    def signatures_shown(self, obj: Binary) -> str:
        shown = [
            (
                signature.signing_key.name,
                signature.scheme,
                signature.prn,
                f"revoked {signature.revoked_at:%Y-%m-%d %H:%M}" if signature.revoked_at else "",
            )
            for signature in obj.signatures.select_related("signing_key", "binary__organization")
        ]
        if not shown:
            return "none"
        return format_html_join(mark_safe("<br>"), "{} ({}) {} {}", shown)

    @admin.display(description="timeline (newest first)")
    def timeline(self, obj: Binary) -> str:
        entries, more = timeline.page(
            obj.organization, timeline.Filters(object_prn=obj.prn), limit=200
        )
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
            "<td><code>{}</code></td></tr>",
            (
                (
                    entry.at,
                    entry.action,
                    f"{entry.from_state or '(new)'} → {entry.to_state}" if entry.to_state else "",
                    entry.actor,
                    entry.source or "",
                    entry.reason,
                    entry.ip or "",
                    json.dumps(entry.details, sort_keys=True) if entry.details else "",
                )
                for entry in entries
            ),
        )
        note = (
            format_html("<p>Older entries: the audit events, object {}.</p>", obj.prn)
            if more
            else ""
        )
        return format_html(
            "<table><thead><tr><th>at</th><th>action</th><th>state</th><th>actor</th>"
            "<th>source</th><th>reason</th><th>IP</th><th>details</th></tr></thead><tbody>{}</tbody></table>{}",
            rows,
            note,
        )

    @admin.action(
        description="Destroy selected binaries (deletes content)…", permissions=["change"]
    )
    def destroy(self, request: HttpRequest, queryset: QuerySet[Binary]) -> TemplateResponse | None:
        return self._move(request, queryset, "destroy", "Destroy binaries", "Destroyed {}.")

    @admin.action(
        description="Reset selected binaries to uploadable (deletes parts and content)…",
        permissions=["change"],
    )
    def reset_to_uploadable(
        self, request: HttpRequest, queryset: QuerySet[Binary]
    ) -> TemplateResponse | None:
        what, done = "Reset binaries to uploadable", "Reset {} to uploadable."
        return self._move(request, queryset, "reset_to_uploadable", what, done)

    def _move(
        self, request: HttpRequest, queryset: QuerySet[Binary], action: str, what: str, done: str
    ) -> TemplateResponse | None:
        """The action's move (moves.py) on each selected binary, once confirmed with a reason."""
        move = {"destroy": moves.destroy, "reset_to_uploadable": moves.reset}[action]
        return staff_action(
            self,
            request,
            queryset.select_related("organization"),
            action=action,
            what=what,
            perform=lambda binary, actor, reason: move(binary=binary, actor=actor, reason=reason),
            named=lambda binary: f"Binary {binary.prn}",
            done=lambda count: done.format(plural(count, "binary", "binaries")),
        )


@admin.register(BinaryEvent)
class BinaryEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "action", "binary", "actor_label", "source", "ip", "reason"]
    ordering = ["-at", "-id"]  # newest first, as the console's trail
    list_filter = ["action", "source", "organization"]
    list_select_related = ["binary"]
    search_fields = ["binary__uuid", "actor_label", "reason"]


@admin.register(SigningKey)
class SigningKeyAdmin(ObjectActions, ReadOnlyAdmin):
    """Keys are registered by members; staff can only revoke one (for good)."""

    list_display = ["name", "algorithm", "keyid", "organization", "created_at", "revoked_at"]
    list_filter = ["algorithm", "organization", ("revoked_at", admin.EmptyFieldListFilter)]
    list_select_related = ["organization"]
    search_fields = ["name", "keyid", "uuid"]
    fields = [
        "name",
        "prn",
        "organization",
        "algorithm",
        "keyid",
        "public_key_pem",
        "created_by",
        "created_at",
        "revoked_at",
    ]
    readonly_fields = ["prn"]
    actions = ["revoke"]
    object_actions = {"revoke": "Revoke…"}

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("binaries.change_signingkey")

    @admin.action(description="Revoke selected signing keys…", permissions=["revoke"])
    def revoke(
        self, request: HttpRequest, queryset: QuerySet[SigningKey]
    ) -> TemplateResponse | None:
        return staff_action(
            self,
            request,
            queryset.select_related("organization"),
            action="revoke",
            what="Revoke signing keys",
            perform=_revoke_signing_key,
            named=lambda key: f"Signing key {key.name} ({key.prn})",
            done=lambda n: (
                f"Revoked {plural(n, 'signing key', 'signing keys')}; their signatures no "
                "longer count."
            ),
        )


def _revoke_signing_key(key: SigningKey, actor: Actor, reason: str) -> None:
    refuse_if_revoked(key.revoked_at)
    signatures.signing_key_revoke(key=key, actor=actor, reason=reason)


@admin.register(BinarySignature)
class BinarySignatureAdmin(ReadOnlyAdmin):
    list_display = ["prn", "binary", "signing_key", "scheme", "created_at", "revoked_at"]
    list_filter = ["scheme", ("revoked_at", admin.EmptyFieldListFilter)]
    list_select_related = ["binary__organization", "signing_key"]
    search_fields = ["uuid", "binary__uuid", "signing_key__name", "signing_key__keyid"]
    fields = [
        "prn",
        "binary",
        "signing_key",
        "scheme",
        "signature_hex",
        "created_by",
        "created_at",
        "revoked_at",
    ]
    readonly_fields = ["prn", "signature_hex"]

    @admin.display(description="PRN")
    def prn(self, obj: BinarySignature) -> str:
        return obj.prn

    @admin.display(description="signature (hex)")
    def signature_hex(self, obj: BinarySignature) -> str:
        return bytes(obj.signature).hex()
