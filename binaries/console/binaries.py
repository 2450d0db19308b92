"""Creating a binary, and one binary's page: progress, reset, destroy, sign, download."""

import json
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from binaries import downloads, lifecycle, moves, services, signatures
from binaries.console.common import (
    HtmxHttpRequest,
    confirmed_reason,
    get_binary_for_user,
    get_version_for_user,
    writer,
)
from binaries.console.forms import (
    BinaryForm,
    DestroyForm,
    ReasonForm,
    SignatureForm,
)
from binaries.models import ArtifactVersion, Binary, BinaryPart, State
from binaries.serializers import BinaryOut
from binaries.validation import STANDARD_TARGETS
from peridio_console.accounts.membership import console_actor, membership_or_404
from peridio_console.accounts.models import Role, role_allows
from peridio_console.core.errors import DomainError
from peridio_console.core.forms import act, add_domain_error, confirmed, submit

POLLING_STATES = (State.HASHABLE, State.HASHING)
MiB = 1 << 20
# An unfinished upload is discarded, not destroyed: the same move, other words.
DISCARDABLE_STATES = (State.UPLOADABLE, State.HASHABLE)


def mib(size: int | None) -> str:
    """Sizes in MiB, as the uploader writes them (KiB below one MiB, bytes below one KiB)."""
    if size is None:
        return ""
    if size < 1024:
        return f"{size} bytes"
    return f"{size / MiB:.1f} MiB" if size >= MiB else f"{size / 1024:.1f} KiB"


def _render_create(request: HttpRequest, version: ArtifactVersion, form: BinaryForm):
    context = {
        "version": version,
        "artifact": version.artifact,
        "form": form,
        "standard_targets": STANDARD_TARGETS,
    }
    return render(request, "console/binary_create.html", context)


@require_GET
@login_required
def binary_new(request: HttpRequest, version_id: UUID) -> HttpResponse:
    version = get_version_for_user(request, version_id)
    return _render_create(request, version, BinaryForm())


@require_POST
@login_required
def binary_create(request: HttpRequest, version_id: UUID) -> HttpResponse:
    """Without JavaScript the form creates the record; the uploader adds hash, size, bytes."""
    writer(request, "creating binaries")
    version = get_version_for_user(request, version_id)
    form = BinaryForm(request.POST)
    binary = submit(
        request,
        form,
        lambda data: services.binary_create(
            artifact_version=version, actor=console_actor(request), **data
        ),
        lambda binary: (
            f"Binary {binary.target} created. Upload its content with the uploader "
            "or `peridio binaries upload`."
        ),
    )
    if binary is not None:
        return redirect("console:binary_detail", binary.uuid)
    return _render_create(request, version, form)


def _progress(binary: Binary) -> dict[str, Any]:
    size = binary.size or 0
    done = min(binary.bytes_hashed, size) if size else binary.bytes_hashed
    return {
        "binary": binary,
        "polling": binary.state in POLLING_STATES,
        "bytes_hashed": done,
        "hashed_mib": mib(done),
        "size_mib": mib(binary.size),
        "percent": (done * 100 // size) if size else (100 if binary.state == State.SIGNABLE else 0),
    }


# The plot area inside the SVG, with room on the left for the count axis and below for dates.
CHART_WIDTH, CHART_HEIGHT, CHART_LEFT, CHART_BOTTOM, CHART_TOP = 640, 170, 40, 30, 12


def _download_chart(binary: Binary) -> dict[str, Any]:
    """Downloads per day over 30 days (what downloads.counted() counts), as an inline SVG's
    geometry: bars, a count axis (0 and the highest day), and a date every week."""
    what, counts = downloads.daily_counts(binary.organization, binary=binary, days=30)
    highest = max(day["count"] for day in counts)
    plot_width, base = CHART_WIDTH - CHART_LEFT, CHART_HEIGHT - CHART_BOTTOM
    slot = plot_width / len(counts)
    bars = []
    for i, day in enumerate(counts):
        height = round(day["count"] / (highest or 1) * (base - CHART_TOP), 1)
        bars.append(
            {
                **day,
                "x": round(CHART_LEFT + i * slot + 1, 1),
                "width": round(slot - 2, 1),
                "y": round(base - height, 1),
                "height": height,
                "label_x": round(CHART_LEFT + (i + 0.5) * slot, 1),
                "tick": i % 7 == 0 or i == len(counts) - 1,
            }
        )
    served = sum(day["bytes"] or 0 for day in counts)
    return {
        "bars": bars,
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "left": CHART_LEFT,
        "base": base,
        "top": CHART_TOP,
        "label": downloads.LABELS[what],
        "completed": what == downloads.COMPLETED,
        "bytes": served,
        "total": sum(day["count"] for day in counts),
        "highest": highest,
        "first": counts[0]["date"],
        "last": counts[-1]["date"],
    }


def _state_note(binary: Binary, download_refusal: str) -> str:
    """Why a signed binary's badge is qualified: the API's download refusal says it."""
    if binary.state == State.DESTROYED:
        return "Its content is gone; the record, parts and signatures are kept for the record."
    return download_refusal


TIMELINE_SHOWN = 50


def _timeline(binary: Binary) -> dict[str, Any]:
    """The binary's latest events, oldest first; older ones are in the audit trail (linked)."""
    latest = list(
        binary.events.order_by("-at", "-id").values(
            "at", "action", "from_state", "to_state", "actor_label", "source", "reason"
        )[: TIMELINE_SHOWN + 1]
    )
    for event in latest:  # formatted here: a template filter per cell costs a page 3 ms
        event["iso"], event["when"] = event["at"].isoformat(), f"{event['at']:%Y-%m-%d %H:%M:%S}"
    return {
        "events": latest[:TIMELINE_SHOWN][::-1],
        "older_events": len(latest) > TIMELINE_SHOWN,
        "trail_query": urlencode({"object": binary.prn}),
    }


def _detail_context(request: HttpRequest, binary: Binary, **extra: Any) -> dict[str, Any]:
    membership = membership_or_404(request)
    moves = lifecycle.allowed_client_moves(binary.state)
    can_write = role_allows(membership.role, Role.ENGINEER)
    refusal = ""
    if binary.state == State.SIGNED:
        try:
            downloads.require_downloadable(binary)
        except DomainError as refused:
            refusal = refused.message
    context: dict[str, Any] = {
        **_progress(binary),
        "artifact": binary.artifact_version.artifact,
        "version": binary.artifact_version,
        "record": json.dumps(BinaryOut.from_model(binary).model_dump(), indent=2),
        "metadata": json.dumps(binary.custom_metadata, indent=2, sort_keys=True),
        "parts": BinaryPart.objects.filter(binary=binary).order_by("index"),
        "signatures": list(binary.signatures.all()),
        **_timeline(binary),
        "can_write": can_write,
        "state_note": _state_note(binary, refusal),
        "can_remove_signatures": can_write and binary.state != State.DESTROYED,
        "can_reset": can_write and State.UPLOADABLE in moves,
        "can_destroy": can_write and State.DESTROYED in moves,
        "discard": binary.state in DISCARDABLE_STATES,
        "can_upload": can_write and binary.state == State.UPLOADABLE,
        # Signable -> signed is the move; a signed binary takes more (e.g. after a key revoke).
        "can_sign": can_write and binary.state in signatures.SIGNABLE_STATES,
        "can_download": binary.state == State.SIGNED and not refusal,
        "download_refusal": refusal,
        "chart": _download_chart(binary),
        "destroy_form": DestroyForm(target=binary.target),
        "sign_form": SignatureForm(organization=binary.organization),
        "download": None,
    }
    context.update(extra)
    return context


def _binary_page(request: HttpRequest, binary: Binary, **extra: Any) -> HttpResponse:
    return render(request, "console/binary_detail.html", _detail_context(request, binary, **extra))


@require_GET
@login_required
def binary_detail(request: HttpRequest, binary_id: UUID) -> HttpResponse:
    return _binary_page(request, get_binary_for_user(request, binary_id))


@require_GET
@login_required
def binary_progress(request: HttpRequest, binary_id: UUID) -> HttpResponse:
    """The hashing progress partial, polled every second while the binary is being verified."""
    binary = get_binary_for_user(request, binary_id)
    context = _progress(binary)
    if context["polling"]:
        return render(request, "console/binary_detail.html#progress", context)
    # Done (or reset): stop polling, and reload so the actions, record and timeline catch up.
    html = render_to_string("console/binary_detail.html#progress", context, request=request)
    response = HttpResponseStopPolling(html)
    response["HX-Refresh"] = "true"
    return response


def _back(binary: Binary) -> HttpResponse:
    return redirect("console:binary_detail", binary.uuid)


@require_POST
@login_required
def binary_reset(request: HttpRequest, binary_id: UUID) -> HttpResponse:
    writer(request, "resetting binaries")
    binary = get_binary_for_user(request, binary_id)
    if not confirmed(request, "resetting a binary (its content is deleted)"):
        return _back(binary)
    form = ReasonForm(request.POST)
    reason = form.cleaned_data["reason"].strip() if form.is_valid() else ""
    act(
        request,
        lambda: moves.reset(binary=binary, actor=console_actor(request), reason=reason),
        "The binary is uploadable again; parts and content deleted.",
    )
    return _back(binary)


@require_POST
@login_required
def binary_destroy(request: HttpRequest, binary_id: UUID) -> HttpResponse:
    writer(request, "destroying binaries")
    binary = get_binary_for_user(request, binary_id)
    form = DestroyForm(request.POST, target=binary.target)
    if not form.is_valid():
        return _binary_page(request, binary, destroy_form=form)
    reason = form.cleaned_data["reason"]
    done = (
        f"The binary was discarded: target {binary.target} is free for another binary; its "
        "record and history are kept."
        if binary.state in DISCARDABLE_STATES
        else "The binary was destroyed; its record and history are kept."
    )
    act(
        request,
        lambda: moves.destroy(binary=binary, actor=console_actor(request), reason=reason),
        done,
    )
    return _back(binary)


SIGNATURE_FIELDS = {
    "signature": "signature",
    "signing_key_prn": "signing_key",
    "signing_key_keyid": "signing_key",
}


@require_POST
@login_required
def binary_sign(request: HttpRequest, binary_id: UUID) -> HttpResponse:
    writer(request, "signing binaries")
    binary = get_binary_for_user(request, binary_id)
    form = SignatureForm(request.POST, request.FILES, organization=binary.organization)
    if form.is_valid():
        try:
            signatures.signature_create(
                binary=binary,
                signature=form.cleaned_data["signature_text"],
                signing_key=form.cleaned_data["signing_key"],
                actor=console_actor(request),
            )
        except DomainError as exc:
            if exc.field not in SIGNATURE_FIELDS:  # not about what was typed: the state, say
                messages.error(request, exc.message)
                return _back(binary)
            add_domain_error(form, exc, SIGNATURE_FIELDS)
        else:
            messages.success(request, "Signature verified and attached.")
            return _back(binary)
    binary = get_binary_for_user(request, binary_id)  # the state may have moved meanwhile
    return _binary_page(request, binary, sign_form=form)


def _issue_download_url(request: HttpRequest, binary: Binary) -> downloads.DownloadUrl:
    """Any member may, as in the API; downloads.issue_url audits each one."""
    return downloads.issue_url(
        binary=binary, actor=console_actor(request), base_url=request.build_absolute_uri("/")
    )


@require_POST
@login_required
def binary_download_url(request: HtmxHttpRequest, binary_id: UUID) -> HttpResponse:
    """A time-limited download URL (any member, as in the API); each one is audited."""
    binary = get_binary_for_user(request, binary_id)
    try:
        issued = _issue_download_url(request, binary)
    except DomainError as exc:
        if request.htmx:
            context = {"binary": binary, "can_download": False, "download_error": exc.message}
            return render(request, "console/binary_detail.html#download", context)
        messages.error(request, exc.message)
        return _back(binary)
    if request.htmx:
        context = {"binary": binary, "can_download": True, "download": issued}
        response = render(request, "console/binary_detail.html#download", context)
    else:
        response = _binary_page(request, binary, download=issued)
    response["Cache-Control"] = "no-store"  # the URL is a bearer credential
    return response


@require_POST
@login_required
def signature_remove(request: HttpRequest, binary_id: UUID, signature_id: UUID) -> HttpResponse:
    """Remove one signature, with the reason the audit trail keeps."""
    writer(request, "removing signatures")
    binary = get_binary_for_user(request, binary_id)
    signature = get_object_or_404(
        binary.signatures.select_related("signing_key"), uuid=signature_id
    )
    reason = confirmed_reason(request, "removing a signature", "the signature is removed")
    if reason is None:
        return _back(binary)
    act(
        request,
        lambda: signatures.signature_delete(
            signature=signature, actor=console_actor(request), reason=reason
        ),
        f"The signature by {signature.signing_key.name} was removed.",
    )
    return _back(binary)


@require_POST
@login_required
def binary_download(request: HttpRequest, binary_id: UUID) -> HttpResponse:
    """The Download button: a fresh download URL (issued and counted as the API's), followed."""
    binary = get_binary_for_user(request, binary_id)
    try:
        issued = _issue_download_url(request, binary)
    except DomainError as exc:
        messages.error(request, exc.message)
        return _back(binary)
    response = redirect(issued.url)
    response["Cache-Control"] = "no-store"  # the URL is a bearer credential
    return response
