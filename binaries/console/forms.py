"""Console forms. They check the shape of what was typed; the services decide and write."""

import json
import re
from typing import Any

from django import forms

from binaries.models import SigningKey, State
from binaries.services import MAX_REASON
from binaries.validation import MAX_DESCRIPTION, to_utc
from peridio_console.accounts.models import AuditAction, EventSource, Organization
from peridio_console.core.forms import QuickSelect

MAX_SIGNATURE_FILE = 16 * 1024
SIGNATURE_TEXT_RE = re.compile(r"^[0-9A-Za-z+/=_\-\s]+$")


class JSONObjectField(forms.CharField):
    """A JSON object typed into a textarea; empty means {}."""

    widget = forms.Textarea(attrs={"rows": 4, "spellcheck": "false"})

    def to_python(self, value: Any) -> Any:
        text = super().to_python(value) or ""
        if not text.strip():
            return {}
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(
                f"This is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
            ) from None
        if not isinstance(parsed, dict):
            raise forms.ValidationError(
                f'Custom metadata must be a JSON object such as {{"build": 42}}; '
                f"got a JSON {type(parsed).__name__}."
            )
        return parsed

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, dict):
            return json.dumps(value, indent=2) if value else ""
        return value


def _description() -> forms.CharField:
    return forms.CharField(max_length=MAX_DESCRIPTION, required=False)


class ArtifactForm(forms.Form):
    name = forms.CharField(max_length=128)
    description = _description()
    custom_metadata = JSONObjectField(required=False, label="Custom metadata (JSON object)")


class ArtifactVersionForm(forms.Form):
    version = forms.CharField(max_length=128, help_text="For example 1.4.2 or 2024.06-rc1.")
    description = _description()
    custom_metadata = JSONObjectField(required=False, label="Custom metadata (JSON object)")


class ArtifactVersionEditForm(forms.Form):
    """What a version's PATCH changes: its number is its identity, kept."""

    description = _description()
    custom_metadata = JSONObjectField(required=False, label="Custom metadata (JSON object)")


class BinaryForm(forms.Form):
    target = forms.CharField(
        max_length=128,
        help_text="A triplet such as arm-linux-gnueabihf, a custom target, or universal.",
        widget=forms.TextInput(
            attrs={"list": "standard-targets", "autocomplete": "off", "spellcheck": "false"}
        ),
    )
    description = _description()
    custom_metadata = JSONObjectField(required=False, label="Custom metadata (JSON object)")


class BinaryFilterForm(forms.Form):
    target = forms.CharField(max_length=128, required=False)
    state = forms.ChoiceField(choices=[("", "Any state"), *State.choices], required=False)
    search = forms.CharField(
        max_length=2000,
        required=False,
        help_text="The API's search language, e.g. description-'nightly' and size>=1048576.",
    )
    page = forms.CharField(required=False, widget=forms.HiddenInput)


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=MAX_REASON, required=False, label="Reason (optional)")

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("auto_id", "reset_%s")  # shares its page with the destroy form
        super().__init__(*args, **kwargs)


class DestroyForm(forms.Form):
    confirm_target = forms.CharField(max_length=128, label="Type the target to confirm")
    reason = forms.CharField(
        max_length=MAX_REASON,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Kept for ever in the audit trail.",
    )

    def __init__(self, *args: Any, target: str, **kwargs: Any):
        kwargs.setdefault("auto_id", "destroy_%s")
        super().__init__(*args, **kwargs)
        self.target = target

    def clean_confirm_target(self) -> str:
        typed = self.cleaned_data["confirm_target"]
        if typed.strip() != self.target:
            raise forms.ValidationError(
                f"Type the binary's target, {self.target}, exactly to confirm; got {typed!r}."
            )
        return typed

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("Say why the binary is destroyed.")
        return reason


class KeySelect(forms.Select):
    """Options carry their key's algorithm and public key, which the in-browser signer
    (static/js/signer.js) checks a private key against before it signs."""

    def create_option(self, name: str, value: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        option = super().create_option(name, value, *args, **kwargs)
        key = getattr(value, "instance", None)
        if isinstance(key, SigningKey):
            option["attrs"]["data-algorithm"] = key.algorithm
            option["attrs"]["data-public-key"] = key.public_key_pem
        return option


class SignatureForm(forms.Form):
    signing_key = forms.ModelChoiceField(
        queryset=SigningKey.objects.none(), to_field_name="uuid", empty_label=None, widget=KeySelect
    )
    signature = forms.CharField(
        required=False,
        max_length=8192,
        label="Signature (hex or base64)",
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
    )
    signature_file = forms.FileField(
        required=False,
        label="…or a signature file (.sig)",
        help_text="For example the output of openssl dgst -sha256 -sign key.pem -out fw.sig.",
    )

    def __init__(self, *args: Any, organization: Organization, **kwargs: Any):
        super().__init__(*args, **kwargs)
        field: Any = self.fields["signing_key"]
        field.queryset = SigningKey.objects.filter(
            organization=organization, revoked_at__isnull=True
        ).order_by("name", "id")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        text, upload = data.get("signature", ""), data.get("signature_file")
        if bool(text and text.strip()) == bool(upload):
            raise forms.ValidationError("Paste a signature or choose a signature file (not both).")
        data["signature_text"] = text.strip() if text else _signature_file_text(upload)
        return data


def _signature_file_text(upload: Any) -> str:
    if upload.size > MAX_SIGNATURE_FILE:
        raise forms.ValidationError(
            f"A signature file is at most {MAX_SIGNATURE_FILE} bytes; this one is {upload.size}."
        )
    raw = upload.read()
    # A .sig is usually raw bytes (openssl); some tools write it as hex or base64 text.
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return raw.hex()
    return text.strip() if text.strip() and SIGNATURE_TEXT_RE.match(text) else raw.hex()


class SigningKeyForm(forms.Form):
    name = forms.CharField(max_length=128)
    value = forms.CharField(
        label="Public key (PEM, or base64 of a raw Ed25519 key)",
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
        help_text=(
            "Only the public key: openssl pkey -in private.pem -pubout. A raw 32-byte value "
            "must be the public key, never the private seed: the two look alike."
        ),
    )


class UtcDateTimeField(forms.DateTimeField):
    """A date-time filter, in UTC whatever offset was typed (the API's since/until rule)."""

    def to_python(self, value: Any) -> Any:
        try:
            return to_utc(super().to_python(value))
        except ValueError as exc:
            raise forms.ValidationError(f"This date-time {exc}.", code="invalid") from None


# Typed as ISO text: a browser's date-time picker shows the user's locale (mm/dd/yyyy).
ISO_DATE_TIME = forms.DateTimeInput(
    attrs={
        "placeholder": "YYYY-MM-DD or YYYY-MM-DD HH:MM",
        "inputmode": "numeric",
        "spellcheck": "false",
        "autocomplete": "off",
    },
    format="%Y-%m-%d %H:%M",
)


class AuditFilterForm(forms.Form):
    action = forms.ChoiceField(
        choices=[("", "any action"), *AuditAction.choices], required=False, widget=QuickSelect
    )
    object = forms.CharField(max_length=256, required=False, label="Object PRN")
    actor = forms.CharField(
        max_length=160,
        required=False,
        help_text="A member's username, or an actor as shown (system: janitor).",
    )
    source = forms.ChoiceField(
        choices=[("", "any source"), *EventSource.choices], required=False, widget=QuickSelect
    )
    since = UtcDateTimeField(
        required=False,
        help_text="ISO date, e.g. 2026-11-29 or 2026-11-29 14:30.",
        label="Since (UTC)",
        widget=ISO_DATE_TIME,
    )
    until = UtcDateTimeField(
        required=False,
        label="Until (UTC, exclusive)",
        widget=ISO_DATE_TIME,
    )
    page = forms.CharField(required=False, widget=forms.HiddenInput)
