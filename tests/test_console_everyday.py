"""The console's everyday actions without a browser: editing and deleting artifacts and
versions with the API's rules, removing a signature, the Download button, the dashboard's
figures, badges from the API's rules, and confirmations that refuse when absent."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from binaries import selectors, signatures
from binaries.models import Artifact, ArtifactVersion, Binary, BinarySignature, PartState, State
from binaries.templatetags.binary_state import state_text
from peridio_console.accounts.actors import Actor
from peridio_console.accounts.models import AuditEvent
from tests.console_helpers import KeyPair, signed_binary, verified_binary
from tests.factories import ArtifactVersionFactory, BinaryPartFactory

pytestmark = pytest.mark.django_db


# --- Artifacts and versions -----------------------------------------------------------------


def test_it_edits_an_artifact(engineer, version):
    artifact = version.artifact
    url = reverse("console:artifact_edit", args=[artifact.uuid])
    page = engineer.get(url).content.decode()
    assert f'value="{artifact.name}"' in page
    response = engineer.post(
        url, {"name": "renamed", "description": "new words", "custom_metadata": '{"a": 1}'}
    )
    assert response.status_code == 302
    artifact.refresh_from_db()
    assert (artifact.name, artifact.description, artifact.custom_metadata) == (
        "renamed",
        "new words",
        {"a": 1},
    )


def test_it_refuses_a_bad_edit_and_changes_nothing(engineer, version, org):
    taken = ArtifactVersionFactory(artifact__organization=org).artifact
    artifact = version.artifact
    url = reverse("console:artifact_edit", args=[artifact.uuid])
    response = engineer.post(url, {"name": taken.name, "custom_metadata": "{}"})
    assert response.status_code == 200
    assert "already exists in this organization" in response.content.decode()
    response = engineer.post(url, {"name": "x", "custom_metadata": "[1]"})
    assert "Custom metadata must be a JSON object" in response.content.decode()
    before = artifact.name
    artifact.refresh_from_db()
    assert artifact.name == before


def test_it_edits_a_version_and_shows_its_metadata(engineer, version):
    url = reverse("console:version_edit", args=[version.uuid])
    response = engineer.post(url, {"description": "rc", "custom_metadata": '{"build": 42}'})
    assert response.status_code == 302
    version.refresh_from_db()
    assert version.custom_metadata == {"build": 42}
    page = engineer.get(reverse("console:version_detail", args=[version.uuid])).content.decode()
    assert "&quot;build&quot;: 42" in page


def test_it_deletes_empty_artifacts_and_versions_only_when_confirmed(engineer, version):
    url = reverse("console:version_delete", args=[version.uuid])
    engineer.post(url)
    assert ArtifactVersion.objects.filter(pk=version.pk).exists()
    response = engineer.post(url, {"confirm": "yes"})
    assert not ArtifactVersion.objects.filter(pk=version.pk).exists()
    assert response["Location"] == reverse("console:artifact_detail", args=[version.artifact.uuid])
    url = reverse("console:artifact_delete", args=[version.artifact.uuid])
    engineer.post(url, {"confirm": "yes"})
    assert not Artifact.objects.filter(pk=version.artifact.pk).exists()


def test_it_keeps_a_version_with_binaries_and_says_why(engineer, version):
    verified_binary("destroyed", version)
    url = reverse("console:version_delete", args=[version.uuid])
    response = engineer.post(url, {"confirm": "yes"}, follow=True)
    assert ArtifactVersion.objects.filter(pk=version.pk).exists()
    assert "destroyed binary whose records are kept" in response.content.decode()


def test_it_refuses_viewers_edits_and_deletes(viewer, version):
    for name, args in [
        ("artifact_edit", [version.artifact.uuid]),
        ("artifact_delete", [version.artifact.uuid]),
        ("version_edit", [version.uuid]),
        ("version_delete", [version.uuid]),
    ]:
        response = viewer.post(reverse(f"console:{name}", args=args), {"confirm": "yes"})
        assert response.status_code == 403, name
    assert ArtifactVersion.objects.filter(pk=version.pk).exists()


# --- Signatures and downloads ---------------------------------------------------------------


def test_it_removes_a_signature_only_with_confirmation_and_reason(engineer, version):
    pair = KeyPair()
    binary = signed_binary(version, pair.register(version.organization), pair)
    signature = BinarySignature.objects.get(binary=binary)
    url = reverse("console:signature_remove", args=[binary.uuid, signature.uuid])
    engineer.post(url, {"reason": "x"})
    engineer.post(url, {"confirm": "yes"})
    assert BinarySignature.objects.filter(pk=signature.pk).exists()
    engineer.post(url, {"confirm": "yes", "reason": "wrong key"})
    assert not BinarySignature.objects.filter(pk=signature.pk).exists()
    assert AuditEvent.objects.get(action="binary_signature.deleted").details == {
        "binary_prn": binary.prn,
        "reason": "wrong key",
    }


def test_it_keeps_a_destroyed_binarys_signatures(engineer, version):
    pair = KeyPair()
    binary = signed_binary(version, pair.register(version.organization), pair)
    Binary.objects.filter(pk=binary.pk).update(state=State.DESTROYED)
    signature = BinarySignature.objects.get(binary=binary)
    url = reverse("console:signature_remove", args=[binary.uuid, signature.uuid])
    response = engineer.post(url, {"confirm": "yes", "reason": "tidy"}, follow=True)
    assert BinarySignature.objects.filter(pk=signature.pk).exists()
    assert "cannot be removed" in response.content.decode()


def test_the_download_button_redirects_to_a_counted_url(viewer, version):
    pair = KeyPair()
    binary = signed_binary(version, pair.register(version.organization), pair)
    response = viewer.post(reverse("console:binary_download", args=[binary.uuid]))
    assert response.status_code == 302
    assert "/transfer/binaries/" in response["Location"]
    assert response["Cache-Control"] == "no-store"
    assert AuditEvent.objects.filter(action="download_url.issued").count() == 1


def test_the_download_button_refuses_an_unsigned_binary(viewer, version):
    binary = verified_binary("signable", version)
    response = viewer.post(reverse("console:binary_download", args=[binary.uuid]), follow=True)
    assert "only signed binaries can be downloaded" in response.content.decode()
    assert not AuditEvent.objects.filter(action="download_url.issued").exists()


# --- What is shown --------------------------------------------------------------------------


def test_badges_follow_the_apis_signature_status(version):
    pair = KeyPair()
    key = pair.register(version.organization)
    binary = signed_binary(version, key, pair)
    assert state_text(binary) == ("state-signed", "signed")
    signatures.signing_key_revoke(key=key, actor=Actor.system("test"))
    binary = selectors.binaries(version.organization).get(pk=binary.pk)
    assert state_text(binary) == ("state-alarm", "signed — signatures revoked")
    BinarySignature.objects.filter(binary=binary).delete()
    binary = selectors.binaries(version.organization).get(pk=binary.pk)
    assert state_text(binary) == ("state-alarm", "signed — no signature")


def test_the_dashboard_counts_states_storage_and_what_needs_attention(engineer, version, org):
    verified_binary("signable", version, target="a", size=1000)
    stale = verified_binary("uploadable", version, target="b", size=5000)
    BinaryPartFactory(binary=stale, index=1, size=300, state=PartState.VALID)
    Binary.objects.filter(pk=stale.pk).update(created_at=timezone.now() - timedelta(days=2))
    failed = verified_binary("uploadable", version, target="c")
    Binary.objects.filter(pk=failed.pk).update(last_error="SHA-256 mismatch: expected x, got y")
    assert selectors.state_counts(org)["uploadable"] == 2
    assert selectors.state_counts(org)["signable"] == 1
    assert selectors.storage_used(org) == 1000 + 300
    attention = selectors.needing_attention(org)
    assert [b.target for b in attention["stalled"]] == ["b"]
    assert [b.target for b in attention["failed"]] == ["c"]
    page = engineer.get(reverse("dashboard")).content.decode()
    assert 'data-state="uploadable"><a href="/artifacts/"><span class="count">2</span>' in page
    assert "SHA-256 mismatch" in page
    assert "1.3 KiB" in page


def test_the_login_form_keeps_the_username(client, engineer_membership):
    response = client.post(reverse("login"), {"username": "someone", "password": "wrong"})
    assert 'value="someone"' in response.content.decode()
