"""The Django admin for support staff, and the pieces every model's admin shares.

Staff read everything and change only what a member could, through the same services. Fields
that a lifecycle, a verification or a revocation owns are shown, never edited; an edit is
recorded in the audit trail with the staff user and each field's before and after; a staff
action (revoke, destroy, reset) asks for a reason on a page of its own first.
"""

from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import flatten_fieldsets, unquote
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from peridio_console.accounts import audit, services
from peridio_console.accounts.actors import Actor
from peridio_console.accounts.models import (
    ApiKey,
    AuditAction,
    AuditEvent,
    EventSource,
    Membership,
    Organization,
)
from peridio_console.core.errors import Conflict, DomainError

MAX_REASON = 1000  # as binaries.services.MAX_REASON, which this layer cannot import


def admin_actor(request: HttpRequest) -> Actor:
    """The staff user, with the request's address and user agent, source "admin"."""
    return Actor.for_user(request.user).from_request(request, EventSource.ADMIN)


# --- Read-only models: the audit trail and the records that only the lifecycle writes -----


class ReadOnlyAdmin(admin.ModelAdmin):
    """Shown to staff, never added, changed or deleted through the admin."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- Edits through a service, audited with before and after ------------------------------


class CleanedForm(forms.ModelForm):
    """A change form whose fields go through the domain's own input rules, so a value the
    API would refuse is refused here on its field, before anything is saved."""

    cleaners: ClassVar[dict[str, Callable[[Any], Any]]] = {}

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for field, cleaner in self.cleaners.items():
            if field in data:
                try:
                    data[field] = cleaner(data[field])
                except DomainError as exc:
                    self.add_error(field, exc.message)
        return data


class ServiceAdmin(admin.ModelAdmin):
    """A model whose admin shows `fields` and lets staff edit only `editable`, through
    `apply` (a service, which records the change in the audit trail). Nothing is added or
    deleted here: records come from clients, and leave through their own staff actions."""

    form = CleanedForm
    editable: ClassVar[tuple[str, ...]] = ()

    def apply(self, obj: Any, values: dict[str, Any], actor: Actor) -> None:
        raise NotImplementedError

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        shown = flatten_fieldsets(self.fieldsets) if self.fieldsets else self.fields or ()
        return [str(field) for field in shown if field not in self.editable]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool):
        current = type(obj).objects.get(pk=obj.pk)
        names = [field for field in self.editable if field in form.changed_data]
        changes = audit.changes(
            {field: getattr(current, field) for field in names},
            {field: form.cleaned_data[field] for field in names},
        )
        if not changes:
            return
        try:
            values = {field: after for field, (_, after) in changes.items()}
            self.apply(current, values, admin_actor(request))
        except DomainError as exc:
            request._admin_refusal = exc.message  # type: ignore[attr-defined]
        obj.refresh_from_db()

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        if getattr(request, "_admin_refusal", None):
            return None
        return super().log_change(request, obj, message)

    def response_change(self, request: HttpRequest, obj: Any) -> HttpResponse:
        refusal = getattr(request, "_admin_refusal", None)
        if refusal:
            messages.error(request, refusal)
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)


# --- Staff actions: a confirmation page that asks why, then the service for each object ---


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=MAX_REASON,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Kept for ever in the audit trail, with your name and address.",
        error_messages={"required": "Say why: the reason is kept in the audit trail."},
    )


def staff_action(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet[Any],
    *,
    action: str,
    what: str,
    perform: Callable[[Any, Actor, str], object],
    named: Callable[[Any], str],
    done: Callable[[int], str],
) -> TemplateResponse | None:
    """Show the confirmation page for `what` (e.g. "Revoke API keys"), or, once confirmed
    with a reason, `perform` it on each selected object as the staff user. A refusal names
    its object (`named`) and leaves the others to go on."""
    form = ReasonForm(request.POST if "confirm" in request.POST else None)
    if not form.is_bound or not form.is_valid():
        opts = model_admin.model._meta
        context = {
            **model_admin.admin_site.each_context(request),
            "title": f"{what}: are you sure?",
            "what": what,
            "opts": opts,
            "objects": [(obj, named(obj)) for obj in queryset],
            "form": form,
            "action": action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": model_admin.media,
        }
        return TemplateResponse(request, "admin/staff_action_confirmation.html", context)
    actor = admin_actor(request)
    count = 0
    for obj in queryset:
        try:
            perform(obj, actor, form.cleaned_data["reason"])
        except DomainError as exc:
            model_admin.message_user(request, f"{named(obj)}: {exc.message}", messages.ERROR)
        else:
            count += 1
    if count:
        model_admin.message_user(request, done(count), messages.SUCCESS)
    return None


class ObjectActions(admin.ModelAdmin):
    """Staff actions as buttons on an object's own page (`object_actions`: action name ->
    label), each opening the same confirmation as the action chosen in the list."""

    change_form_template = "admin/change_form_with_actions.html"
    object_actions: ClassVar[dict[str, str]] = {}

    def get_urls(self) -> list[URLPattern]:
        name = f"{self.opts.app_label}_{self.opts.model_name}_action"
        view = self.admin_site.admin_view(self.object_action_view)
        return [path("<path:object_id>/action/<str:action>/", view, name=name), *super().get_urls()]

    def object_action_view(self, request: HttpRequest, object_id: str, action: str):
        obj = self.get_object(request, unquote(object_id))
        chosen = self.get_actions(request).get(action) if action in self.object_actions else None
        if obj is None or chosen is None:
            raise Http404("No such object, or no such action on it.")
        return chosen[0](self, request, self.get_queryset(request).filter(pk=obj.pk))

    def render_change_form(
        self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any
    ) -> HttpResponse:
        allowed = self.get_actions(request)
        context["object_actions"] = [
            (name, label) for name, label in self.object_actions.items() if name in allowed
        ]
        return super().render_change_form(request, context, *args, **kwargs)


def plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


# --- The accounts models -------------------------------------------------------------------


class MembershipInline(admin.TabularInline):
    """Who belongs to the organization; roles change on each membership's own page."""

    model = Membership
    extra = 0
    can_delete = False
    fields = readonly_fields = ("user", "role", "created_at", "last_used_at")
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Organization)
class OrganizationAdmin(ServiceAdmin):
    list_display = ["name", "slug", "uuid", "created_at"]
    search_fields = ["name", "slug", "uuid"]
    fields = ["name", "slug", "uuid", "prn", "created_at"]
    editable = ("name",)
    inlines = [MembershipInline]

    def apply(self, obj: Organization, values: dict[str, Any], actor: Actor) -> None:
        services.organization_rename(organization=obj, name=values["name"], actor=actor)


def _remove_member(membership: Membership, actor: Actor, reason: str) -> None:
    services.membership_remove(membership=membership, actor=actor, reason=reason)


@admin.register(Membership)
class MembershipAdmin(ObjectActions, ServiceAdmin):
    """Roles change, and members leave, through the members' service (an organization keeps
    an admin; a member's API keys there are revoked with them); members join by accepting an
    invitation in the console, never by being added here."""

    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role", "organization"]
    list_select_related = ["user", "organization"]
    search_fields = ["user__username", "user__email", "organization__name"]
    fields = ["user", "organization", "role", "created_at", "last_used_at"]
    editable = ("role",)

    actions = ["remove"]
    object_actions = {"remove": "Remove from the organization…"}

    def apply(self, obj: Membership, values: dict[str, Any], actor: Actor) -> None:
        services.membership_change_role(membership=obj, role=values["role"], actor=actor)

    @admin.action(
        description="Remove selected members from their organization…", permissions=["change"]
    )
    def remove(
        self, request: HttpRequest, queryset: QuerySet[Membership]
    ) -> TemplateResponse | None:
        return staff_action(
            self,
            request,
            queryset.select_related("organization", "user"),
            action="remove",
            what="Remove members",
            perform=_remove_member,
            named=lambda m: f"{m.user.get_username()} from {m.organization.name} ({m.role})",
            done=lambda n: (
                f"Removed {plural(n, 'member', 'members')}; their API keys there are revoked."
            ),
        )


def refuse_if_revoked(revoked_at: datetime | None) -> None:
    """A staff action names what it skipped: revoking again would change nothing."""
    if revoked_at is not None:
        raise Conflict(
            f"it was revoked at {revoked_at:%Y-%m-%d %H:%M:%S} UTC already; a revocation is final."
        )


def _revoke_api_key(key: ApiKey, actor: Actor, reason: str) -> None:
    refuse_if_revoked(key.revoked_at)
    services.api_key_revoke(key=key, actor=actor, reason=reason)


@admin.register(ApiKey)
class ApiKeyAdmin(ObjectActions, ServiceAdmin):
    """Staff may rename and revoke keys; a revoked key stays revoked (revoked_at is never a
    form field), and the secret exists nowhere to be shown."""

    list_display = [
        "name",
        "prefix",
        "organization",
        "user",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["organization", ("revoked_at", admin.EmptyFieldListFilter)]
    list_select_related = ["organization", "user"]
    search_fields = ["name", "prefix", "user__username"]
    fields = ["name", "prefix", "organization", "user", "created_at", "last_used_at", "revoked_at"]
    editable = ("name",)
    actions = ["revoke"]
    object_actions = {"revoke": "Revoke…"}

    def apply(self, obj: ApiKey, values: dict[str, Any], actor: Actor) -> None:
        services.api_key_rename(key=obj, name=values["name"], actor=actor)

    @admin.action(description="Revoke selected API keys…", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> TemplateResponse | None:
        return staff_action(
            self,
            request,
            queryset.select_related("organization", "user"),
            action="revoke",
            what="Revoke API keys",
            perform=_revoke_api_key,
            named=lambda key: f"API key {key.prefix} ({key.name or 'unnamed'})",
            done=lambda n: f"Revoked {plural(n, 'API key', 'API keys')}.",
        )


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """The audit trail, as recorded: nothing here can add, change or delete an event."""

    list_display = ["at", "action", "object_prn", "actor_label", "source", "ip", "organization"]
    ordering = ["-at", "-id"]  # newest first, as the console's trail
    list_filter = ["action", "source", "organization"]
    list_select_related = ["organization"]
    search_fields = ["=object_prn", "actor_label", "=action"]
    date_hierarchy = "at"


# --- Users: Django's own admin, with every edit recorded in the trail of each organization
# the user belongs to, and no deletion (it would take their memberships and keys unrecorded).

User = get_user_model()
USER_FIELDS_HIDDEN = {"password"}  # recorded as changed, never its value


class AuditedUserAdmin(UserAdmin):
    readonly_fields = ("last_login", "date_joined")  # facts, not settings

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # deactivate instead (Active): the user, their events and keys stay

    def save_model(self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool):
        if not change:
            return super().save_model(request, obj, form, change)  # no organization yet
        before = User.objects.get(pk=obj.pk)
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            names = [f for f in form.changed_data if f not in ("groups", "user_permissions")]
            _record_user_change(
                request,
                obj,
                audit.changes(
                    {name: getattr(before, name) for name in names},
                    {name: getattr(obj, name) for name in names},
                ),
            )

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        related = [f for f in ("groups", "user_permissions") if f in form.changed_data]
        before = {f: _names(getattr(form.instance, f)) for f in related} if change else {}
        with transaction.atomic():
            super().save_related(request, form, formsets, change)
            if change:
                after = {f: _names(getattr(form.instance, f)) for f in related}
                _record_user_change(request, form.instance, audit.changes(before, after))

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = ""):
        with transaction.atomic():
            response = super().user_change_password(request, id, form_url)
            if request.method == "POST" and response.status_code == 302:
                user = User.objects.get(pk=unquote(id))
                _record_user_change(request, user, {"password": ["(hidden)", "(changed)"]})
        return response


def _names(related: Any) -> list[str]:
    return sorted(str(item) for item in related.all())


def _record_user_change(request: HttpRequest, user: Any, changes: dict[str, list[Any]]) -> None:
    """user.updated, with the staff user, in each organization the user belongs to."""
    changes = {
        field: ["(hidden)", "(changed)"] if field in USER_FIELDS_HIDDEN else values
        for field, values in changes.items()
    }
    if not changes:
        return
    actor = admin_actor(request)
    for organization in Organization.objects.filter(memberships__user=user).distinct():
        audit.record(
            organization=organization,
            actor=actor,
            action=AuditAction.USER_UPDATED,
            object_prn=organization.prn,
            details={"user": user.get_username(), "changes": changes},
        )


if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, AuditedUserAdmin)
