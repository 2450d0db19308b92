from django.contrib import admin

from peridio_console.accounts.models import ApiKey, Membership, Organization


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "uuid", "created_at"]
    search_fields = ["name", "slug", "uuid"]
    readonly_fields = ["uuid", "prn", "created_at"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role", "organization"]
    search_fields = ["user__username", "organization__name"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Support staff may see and revoke keys; the secret exists nowhere to be shown."""

    list_display = [
        "name",
        "prefix",
        "organization",
        "user",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["organization"]
    search_fields = ["name", "prefix", "user__username"]
    fields = ["name", "organization", "user", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["organization", "user", "prefix", "created_at", "last_used_at"]

    def has_add_permission(self, request) -> bool:
        return False  # keys are created where their secret can be shown once (console, command)
