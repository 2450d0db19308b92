from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from binaries import moves
from binaries.models import Artifact, ArtifactVersion, Binary, BinaryEvent, State
from peridio_console.accounts.actors import Actor
from peridio_console.core.errors import DomainError


@admin.register(Artifact)
class ArtifactAdmin(admin.ModelAdmin):
    list_display = ["name", "organization", "created_at"]
    list_filter = ["organization"]
    search_fields = ["name", "uuid"]
    readonly_fields = ["uuid", "prn", "created_at"]


@admin.register(ArtifactVersion)
class ArtifactVersionAdmin(admin.ModelAdmin):
    list_display = ["version", "artifact", "organization", "created_at"]
    list_filter = ["organization"]
    search_fields = ["version", "artifact__name", "uuid"]
    readonly_fields = ["uuid", "prn", "created_at"]


class BinaryEventInline(admin.TabularInline):
    model = BinaryEvent
    extra = 0
    can_delete = False
    fields = ["at", "from_state", "to_state", "actor_label", "reason"]
    readonly_fields = ["at", "from_state", "to_state", "actor_label", "reason"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


def _move(request: HttpRequest, queryset: QuerySet[Binary], to: str, reason: str) -> None:
    actor = Actor(label=f"{request.user.get_username()} (staff)", user=request.user)
    moved = 0
    for binary in queryset:
        try:
            moves.request_state(binary=binary, to=to, actor=actor, reason=reason)
            moved += 1
        except DomainError as exc:
            messages.error(request, f"Binary {binary.prn}: {exc.message}")
    if moved:
        messages.success(request, f"Moved {moved} binar{'y' if moved == 1 else 'ies'} to {to}.")


@admin.register(Binary)
class BinaryAdmin(admin.ModelAdmin):
    """State is read-only here: the only way to change it is an action through the lifecycle."""

    list_display = ["target", "state", "artifact_version", "organization", "size", "created_at"]
    list_filter = ["state", "organization"]
    search_fields = ["target", "hash", "uuid"]
    readonly_fields = [
        "uuid",
        "prn",
        "state",
        "organization",
        "artifact_version",
        "verified_hash",
        "bytes_hashed",
        "hashing_started_at",
        "hashing_heartbeat_at",
        "integrity_failed_at",
        "created_at",
        "updated_at",
    ]
    inlines = [BinaryEventInline]
    actions = ["reset_to_uploadable", "destroy"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # records are kept for ever; destroy removes content only

    @admin.action(description="Reset to uploadable (deletes parts and content)")
    def reset_to_uploadable(self, request: HttpRequest, queryset: QuerySet[Binary]) -> None:
        _move(request, queryset, State.UPLOADABLE, "reset by support staff")

    @admin.action(description="Destroy (deletes content, keeps the record)")
    def destroy(self, request: HttpRequest, queryset: QuerySet[Binary]) -> None:
        _move(request, queryset, State.DESTROYED, "destroyed by support staff")


@admin.register(BinaryEvent)
class BinaryEventAdmin(admin.ModelAdmin):
    list_display = ["at", "binary", "from_state", "to_state", "actor_label", "reason"]
    list_filter = ["to_state"]
    search_fields = ["binary__uuid", "actor_label", "reason"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
