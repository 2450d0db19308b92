"""Signing keys: the organization's public keys, registered and revoked."""

from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from binaries import signatures
from binaries.console.common import (
    admin,
    confirmed_reason,
    get_signing_key_for_user,
    writer,
)
from binaries.console.forms import (
    SigningKeyForm,
)
from binaries.models import SigningKey
from peridio_console.accounts.membership import console_actor, membership_or_404
from peridio_console.core.forms import submit


def _render_signing_keys(request: HttpRequest, form: SigningKeyForm) -> HttpResponse:
    organization = membership_or_404(request).organization
    keys = SigningKey.objects.filter(organization=organization).order_by("-created_at", "-id")
    return render(request, "console/signing_keys.html", {"keys": keys, "form": form})


@require_GET
@login_required
def signing_key_list(request: HttpRequest) -> HttpResponse:
    return _render_signing_keys(request, SigningKeyForm())


@require_POST
@login_required
def signing_key_create(request: HttpRequest) -> HttpResponse:
    membership = writer(request, "registering signing keys")
    form = SigningKeyForm(request.POST)
    key = submit(
        request,
        form,
        lambda data: signatures.signing_key_create(
            organization=membership.organization,
            name=data["name"],
            value=data["value"],
            actor=console_actor(request),
        ),
        lambda key: f"Signing key {key.name} ({key.algorithm}) registered.",
    )
    if key is not None:
        return redirect("console:signing_key_list")
    return _render_signing_keys(request, form)


@require_POST
@login_required
def signing_key_revoke(request: HttpRequest, key_id: UUID) -> HttpResponse:
    admin(request, "revoking signing keys")
    key = get_signing_key_for_user(request, key_id)
    reason = confirmed_reason(request, "revoking a signing key", "the key is revoked")
    if reason is None:
        return redirect("console:signing_key_list")
    signatures.signing_key_revoke(key=key, actor=console_actor(request), reason=reason)
    messages.success(request, f"Signing key {key.name} revoked; its signatures no longer count.")
    return redirect("console:signing_key_list")
