"""The console's artifact, version and binary pages, and the actions on a binary."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from binaries import services
from binaries.models import Artifact, ArtifactVersion, Binary, BinaryEvent, State
from peridio_console.accounts.actors import Actor
from peridio_console.accounts.models import AuditEvent
from tests.console_helpers import KeyPair, signed_binary, verified_binary
from tests.factories import (
    ArtifactVersionFactory,
    BinaryFactory,
    SigningKeyFactory,
    binary_in_state,
)


@pytest.fixture
def binary(version):
    return verified_binary("signable", version, target="aarch64-linux-gnu")


def page_urls(binary) -> list[str]:
    version = binary.artifact_version
    return [
        reverse("console:artifact_list"),
        reverse("console:artifact_detail", args=[version.artifact.uuid]),
        reverse("console:version_detail", args=[version.uuid]),
        reverse("console:binary_new", args=[version.uuid]),
        reverse("console:binary_detail", args=[binary.uuid]),
        reverse("console:binary_progress", args=[binary.uuid]),
    ]


# --- Access ---------------------------------------------------------------------------------


def test_it_shows_every_page_to_a_member(engineer, viewer, binary):
    for client in (engineer, viewer):
        for url in page_urls(binary):
            assert client.get(url).status_code in (200, 286), url


def test_it_hides_another_organizations_objects(outsider, binary):
    for url in page_urls(binary)[1:]:
        assert outsider.get(url).status_code == 404, url
    for name in ("binary_reset", "binary_destroy", "binary_sign", "binary_download_url"):
        url = reverse(f"console:{name}", args=[binary.uuid])
        assert outsider.post(url, {"reason": "x"}).status_code == 404, url
    version = binary.artifact_version
    url = reverse("console:binary_create", args=[version.uuid])
    assert outsider.post(url, {"target": "universal"}).status_code == 404
    binary.refresh_from_db()
    assert binary.state == State.SIGNABLE


def test_it_sends_anonymous_users_to_login(client, binary):
    for url in page_urls(binary):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login"))
    response = client.post(reverse("console:binary_reset", args=[binary.uuid]))
    assert response.status_code == 302


def test_it_links_artifacts_from_the_dashboard_and_nav(engineer, version):
    response = engineer.get(reverse("dashboard"))
    assert reverse("console:artifact_list").encode() in response.content
    assert reverse("console:artifact_detail", args=[version.artifact.uuid]).encode() in (
        response.content
    )
    assert b">Signing keys</a>" in response.content
    assert b">API keys</a>" in response.content
    assert b">Members</a>" not in response.content  # admins only
    assert b">Audit</a>" not in response.content


# --- Artifacts and versions -----------------------------------------------------------------


def test_it_creates_an_artifact(engineer, org):
    response = engineer.post(
        reverse("console:artifact_create"),
        {"name": "gateway-firmware", "description": "Main image", "custom_metadata": '{"a": 1}'},
    )
    artifact = Artifact.objects.get(organization=org, name="gateway-firmware")
    assert response.status_code == 302
    assert response["Location"] == reverse("console:artifact_detail", args=[artifact.uuid])
    assert artifact.custom_metadata == {"a": 1}
    listing = engineer.get(reverse("console:artifact_list"))
    assert b"gateway-firmware" in listing.content


def test_it_shows_artifact_errors_next_to_the_field(engineer, org):
    engineer.post(reverse("console:artifact_create"), {"name": "dup"})
    response = engineer.post(reverse("console:artifact_create"), {"name": "dup"})
    assert response.status_code == 200
    assert b"already exists in this organization" in response.content
    assert b'id="id_name_error"' in response.content
    response = engineer.post(
        reverse("console:artifact_create"), {"name": "x", "custom_metadata": "[1, 2]"}
    )
    assert b"must be a JSON object" in response.content
    assert b'id="id_custom_metadata_error"' in response.content
    assert Artifact.objects.filter(organization=org).count() == 1


def test_it_creates_a_version(engineer, version):
    artifact = version.artifact
    response = engineer.post(
        reverse("console:artifact_version_create", args=[artifact.uuid]), {"version": "2.0.0"}
    )
    created = ArtifactVersion.objects.get(artifact=artifact, version="2.0.0")
    assert response["Location"] == reverse("console:version_detail", args=[created.uuid])
    page = engineer.get(reverse("console:artifact_detail", args=[artifact.uuid]))
    assert b"2.0.0" in page.content
    again = engineer.post(
        reverse("console:artifact_version_create", args=[artifact.uuid]), {"version": "2.0.0"}
    )
    assert b"already has a version" in again.content


# --- Creating a binary ----------------------------------------------------------------------


def test_it_renders_the_uploader_mount_point(engineer, version):
    response = engineer.get(reverse("console:binary_new", args=[version.uuid]))
    html = response.content.decode()
    assert 'id="create-binary"' in html
    assert 'data-api-base="/v1"' in html
    assert f'data-version-prn="{version.prn}"' in html
    assert '<datalist id="standard-targets">' in html
    assert '<option value="arm-linux-gnueabihf">' in html
    assert 'list="standard-targets"' in html
    assert 'type="file"' in html
    assert 'aria-live="polite"' in html


def test_it_creates_a_binary_without_javascript(engineer, engineer_membership, version):
    response = engineer.post(
        reverse("console:binary_create", args=[version.uuid]),
        {"target": "arm-linux-gnueabihf", "description": "nightly", "custom_metadata": '{"b": 7}'},
    )
    binary = Binary.objects.get(artifact_version=version)
    assert response.status_code == 302
    assert response["Location"] == reverse("console:binary_detail", args=[binary.uuid])
    assert binary.state == State.UPLOADABLE
    assert binary.custom_metadata == {"b": 7}
    event = BinaryEvent.objects.get(binary=binary)
    assert event.to_state == State.UPLOADABLE
    assert event.actor_user == engineer_membership.user


def test_it_shows_binary_errors_next_to_each_field(engineer, version):
    url = reverse("console:binary_create", args=[version.uuid])
    response = engineer.post(url, {"target": "bad target!", "custom_metadata": "{nope"})
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="id_custom_metadata_error"' in html
    assert "not valid JSON" in html
    response = engineer.post(url, {"target": "bad target!"})
    html = response.content.decode()
    assert 'id="id_target_error"' in html
    assert "target must be 1-128 characters" in html
    engineer.post(url, {"target": "universal"})
    response = engineer.post(url, {"target": "universal"})
    assert b"already has a binary for target" in response.content
    assert Binary.objects.filter(artifact_version=version).count() == 1


# --- The binaries table ---------------------------------------------------------------------


def test_it_filters_and_searches_binaries(engineer, version):
    BinaryFactory(artifact_version=version, target="x86_64-linux-gnu", description="nightly A")
    BinaryFactory(artifact_version=version, target="riscv64-linux-gnu", description="release")
    verified_binary("signable", version, target="aarch64-linux-gnu")
    url = reverse("console:version_detail", args=[version.uuid])

    html = engineer.get(url, {"state": "signable"}).content.decode()
    assert "aarch64-linux-gnu" in html
    assert "x86_64-linux-gnu" not in html

    html = engineer.get(url, {"target": "riscv64-linux-gnu"}).content.decode()
    assert "riscv64-linux-gnu" in html
    assert "aarch64-linux-gnu" not in html

    html = engineer.get(url, {"search": "description-'nightly'"}).content.decode()
    assert "x86_64-linux-gnu" in html
    assert "riscv64-linux-gnu" not in html


def test_it_explains_a_bad_search(engineer, version):
    url = reverse("console:version_detail", args=[version.uuid])
    response = engineer.get(url, {"search": "target:"})
    assert response.status_code == 200
    assert b"Invalid search at character 8" in response.content
    assert b'id="id_search_error"' in response.content
    response = engineer.get(url, {"search": "colour:red"})
    assert b"unknown key &#x27;colour&#x27;" in response.content


def test_it_pages_binaries_with_a_cursor(engineer, version):
    for n in range(30):
        BinaryFactory(artifact_version=version, target=f"t-{n:02d}")
    url = reverse("console:version_detail", args=[version.uuid])
    first = engineer.get(url).content.decode()
    assert first.count('class="badge state-uploadable"') == 25
    assert "t-29" in first and "t-04" not in first
    next_query = first.split('rel="next"')[0].rsplit('href="?', 1)[1].split('"')[0]
    second = engineer.get(url + "?" + next_query.replace("&amp;", "&")).content.decode()
    assert second.count('class="badge state-uploadable"') == 5
    assert "t-04" in second and "t-29" not in second
    broken = engineer.get(url, {"page": "nonsense"})
    assert b"page must be a next_page value" in broken.content


def test_it_answers_htmx_with_the_table_partial(engineer, version):
    BinaryFactory(artifact_version=version, target="x86_64-linux-gnu")
    url = reverse("console:version_detail", args=[version.uuid])
    response = engineer.get(url, {"state": "uploadable"}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert html.lstrip().startswith('<section class="card" id="binaries">')
    assert "<html" not in html
    assert "x86_64-linux-gnu" in html


# --- Binary detail --------------------------------------------------------------------------


def test_it_shows_the_binary_record_parts_signatures_and_timeline(engineer, version):
    pair = KeyPair()
    key = pair.register(version.organization)
    binary = signed_binary(version, key, pair, target="aarch64-linux-gnu")
    response = engineer.get(reverse("console:binary_detail", args=[binary.uuid]))
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="binary-json"' in html
    assert 'data-copy-target="#binary-json"' in html
    assert f"&quot;prn&quot;: &quot;{binary.prn}&quot;" in html  # pretty JSON, escaped
    assert "release key" in html  # the signature's key
    assert "signable → " in html  # the timeline
    assert html.count('class="bar"') == 30  # the download chart


def test_it_escapes_user_strings(engineer, version):
    binary = services.binary_create(
        artifact_version=version,
        target="universal",
        actor=Actor.system("test"),
        description="<script>alert(1)</script>",
        custom_metadata={"note": "<script>alert(2)</script>", "<b>": "x"},
    )
    for url in (
        reverse("console:binary_detail", args=[binary.uuid]),
        reverse("console:version_detail", args=[version.uuid]) + "?search=description-'script'",
    ):
        html = engineer.get(url).content.decode()
        assert "<script>alert" not in html
        assert "<b>" not in html
    html = engineer.get(reverse("console:binary_detail", args=[binary.uuid])).content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html


def test_it_shows_the_last_error_prominently(engineer, version):
    binary = BinaryFactory(artifact_version=version)
    Binary.objects.filter(pk=binary.pk).update(last_error="SHA-256 mismatch: declared <x>")
    html = engineer.get(reverse("console:binary_detail", args=[binary.uuid])).content.decode()
    assert '<div class="last-error" role="alert">' in html
    assert "SHA-256 mismatch: declared &lt;x&gt;" in html


@pytest.mark.parametrize(
    ("state", "shown", "hidden"),
    [
        ("uploadable", ["Destroy binary"], ["Reset to uploadable", "Verify and attach"]),
        ("hashing", ["Reset to uploadable"], ["Destroy binary", "Verify and attach"]),
        ("signable", ["Reset to uploadable", "Destroy binary", "Verify and attach"], []),
        ("destroyed", [], ["Reset to uploadable", "Destroy binary", "Get download URL"]),
    ],
)
def test_it_offers_only_the_moves_the_state_allows(engineer, version, state, shown, hidden):
    SigningKeyFactory(organization=version.organization)
    binary = verified_binary(state, version)
    html = engineer.get(reverse("console:binary_detail", args=[binary.uuid])).content.decode()
    for label in shown:
        assert label in html, label
    for label in hidden:
        assert label not in html, label


def test_it_offers_downloads_and_destroy_once_signed(engineer, version):
    pair = KeyPair()
    binary = signed_binary(version, pair.register(version.organization), pair)
    html = engineer.get(reverse("console:binary_detail", args=[binary.uuid])).content.decode()
    assert "Get download URL" in html
    assert "Destroy binary" in html
    assert "Reset to uploadable" not in html


# --- Polling --------------------------------------------------------------------------------


def test_it_polls_hashing_progress_until_signable(engineer, version):
    binary = binary_in_state("hashing", artifact_version=version, size=1000)
    Binary.objects.filter(pk=binary.pk).update(bytes_hashed=250)
    detail = engineer.get(reverse("console:binary_detail", args=[binary.uuid])).content.decode()
    assert 'hx-trigger="every 1s"' in detail
    assert 'role="status" aria-live="polite"' in detail
    url = reverse("console:binary_progress", args=[binary.uuid])
    response = engineer.get(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert b'value="25"' in response.content
    assert b'hx-trigger="every 1s"' in response.content

    Binary.objects.filter(pk=binary.pk).update(state=State.SIGNABLE, bytes_hashed=1000)
    response = engineer.get(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 286
    assert response["HX-Refresh"] == "true"
    assert b"hx-trigger" not in response.content
    assert b"Content verified" in response.content
    detail = engineer.get(reverse("console:binary_detail", args=[binary.uuid])).content.decode()
    assert "hx-trigger" not in detail


# --- Reset ----------------------------------------------------------------------------------


def test_it_resets_a_binary(engineer, binary):
    response = engineer.post(
        reverse("console:binary_reset", args=[binary.uuid]), {"reason": "wrong file"}, follow=True
    )
    binary.refresh_from_db()
    assert binary.state == State.UPLOADABLE
    event = binary.events.order_by("-at", "-id").first()
    assert (event.from_state, event.to_state, event.reason) == (
        "signable",
        "uploadable",
        "wrong file",
    )
    assert b"uploadable again" in response.content


def test_it_refuses_a_reset_the_state_does_not_allow(engineer, version, actor):
    binary = binary_in_state(State.SIGNED, artifact_version=version)
    events = binary.events.count()
    response = engineer.post(reverse("console:binary_reset", args=[binary.uuid]), follow=True)
    binary.refresh_from_db()
    assert binary.state == State.SIGNED
    assert binary.events.count() == events
    assert b"The binary is signed and cannot move to uploadable" in response.content


# --- Destroy --------------------------------------------------------------------------------


def test_it_destroys_a_binary_with_a_reason(engineer, engineer_membership, binary):
    response = engineer.post(
        reverse("console:binary_destroy", args=[binary.uuid]),
        {"confirm_target": "aarch64-linux-gnu", "reason": "CVE-2024-1234 in the bootloader"},
        follow=True,
    )
    binary.refresh_from_db()
    assert binary.state == State.DESTROYED
    event = binary.events.get(to_state=State.DESTROYED)
    assert event.reason == "CVE-2024-1234 in the bootloader"
    assert event.actor_user == engineer_membership.user
    assert b"was destroyed" in response.content


def test_it_wants_the_target_typed_and_a_reason(engineer, binary):
    url = reverse("console:binary_destroy", args=[binary.uuid])
    response = engineer.post(url, {"confirm_target": "aarch64", "reason": "old"})
    assert response.status_code == 200
    assert b"Type the binary&#x27;s target, aarch64-linux-gnu, exactly" in response.content
    response = engineer.post(url, {"confirm_target": "aarch64-linux-gnu", "reason": "  "})
    assert b'id="destroy_reason_error"' in response.content
    binary.refresh_from_db()
    assert binary.state == State.SIGNABLE


def test_it_discards_an_uploadable_binary(engineer, version):
    binary = BinaryFactory(artifact_version=version, target="universal")
    response = engineer.post(
        reverse("console:binary_destroy", args=[binary.uuid]),
        {"confirm_target": "universal", "reason": "gone"},
        follow=True,
    )
    assert response.status_code == 200
    binary.refresh_from_db()
    assert binary.state == State.DESTROYED
    assert binary.events.get(to_state=State.DESTROYED).reason == "gone"


# --- Signatures -----------------------------------------------------------------------------


def test_it_attaches_a_pasted_signature(engineer, version, binary):
    pair = KeyPair()
    key = pair.register(version.organization)
    response = engineer.post(
        reverse("console:binary_sign", args=[binary.uuid]),
        {"signing_key": str(key.uuid), "signature": pair.sign(binary).hex()},
        follow=True,
    )
    binary.refresh_from_db()
    assert binary.state == State.SIGNED
    assert binary.signatures.count() == 1
    assert binary.events.filter(to_state=State.SIGNED).exists()
    assert b"Signature verified and attached" in response.content


def test_it_attaches_a_signature_file(engineer, version, binary):
    pair = KeyPair()
    key = pair.register(version.organization)
    upload = SimpleUploadedFile("firmware.sig", pair.sign(binary))
    engineer.post(
        reverse("console:binary_sign", args=[binary.uuid]),
        {"signing_key": str(key.uuid), "signature_file": upload},
    )
    binary.refresh_from_db()
    assert binary.state == State.SIGNED


def test_it_refuses_a_signature_that_does_not_verify(engineer, version, binary):
    key = SigningKeyFactory(organization=version.organization)
    response = engineer.post(
        reverse("console:binary_sign", args=[binary.uuid]),
        {"signing_key": str(key.uuid), "signature": KeyPair().sign(binary).hex()},
    )
    assert response.status_code == 200
    assert b"does not verify with signing key" in response.content
    binary.refresh_from_db()
    assert binary.state == State.SIGNABLE
    assert binary.signatures.count() == 0


def test_it_refuses_a_second_signature_by_the_same_key_beside_the_key_field(
    engineer, version, binary
):
    pair = KeyPair()
    key = pair.register(version.organization)
    url = reverse("console:binary_sign", args=[binary.uuid])
    body = {"signing_key": str(key.uuid), "signature": pair.sign(binary).hex()}
    engineer.post(url, body)

    response = engineer.post(url, body)

    assert response.status_code == 200
    assert b"already signed this binary" in response.content
    assert binary.signatures.count() == 1


def test_it_refuses_to_sign_in_a_state_that_does_not_allow_it(engineer, version):
    pair = KeyPair()
    key = pair.register(version.organization)
    binary = BinaryFactory(artifact_version=version)
    response = engineer.post(
        reverse("console:binary_sign", args=[binary.uuid]),
        {"signing_key": str(key.uuid), "signature": pair.sign(binary).hex()},
        follow=True,
    )
    assert b"The binary is uploadable; signatures can be attached only" in response.content
    binary.refresh_from_db()
    assert binary.state == State.UPLOADABLE


# --- Download URLs --------------------------------------------------------------------------


def test_it_issues_a_download_url(engineer, engineer_membership, version):
    pair = KeyPair()
    binary = signed_binary(version, pair.register(version.organization), pair)
    url = reverse("console:binary_download_url", args=[binary.uuid])
    response = engineer.post(url)
    html = response.content.decode()
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    assert 'id="download-url" type="text" readonly value="http://testserver/transfer/' in html
    event = AuditEvent.objects.get(action="download_url.issued")
    assert event.object_prn == binary.prn
    assert event.actor_user == engineer_membership.user

    partial = engineer.post(url, HTTP_HX_REQUEST="true").content.decode()
    assert partial.lstrip().startswith('<div id="download">')
    assert "readonly" in partial
    assert AuditEvent.objects.filter(action="download_url.issued").count() == 2
    detail = engineer.get(reverse("console:binary_detail", args=[binary.uuid])).content.decode()
    assert "2 issued from" in detail  # the chart counts them


def test_it_refuses_a_download_url_before_signing(engineer, binary):
    url = reverse("console:binary_download_url", args=[binary.uuid])
    response = engineer.post(url, follow=True)
    assert b"The binary is signable; only signed binaries can be downloaded." in response.content
    partial = engineer.post(url, HTTP_HX_REQUEST="true")
    assert b'role="alert">The binary is signable; only signed' in partial.content
    assert not AuditEvent.objects.filter(action="download_url.issued").exists()


# --- Viewers --------------------------------------------------------------------------------


def test_it_shows_viewers_no_write_controls(viewer, version):
    binary = verified_binary("signable", version)
    SigningKeyFactory(organization=version.organization)
    pages = [
        reverse("console:artifact_list"),
        reverse("console:artifact_detail", args=[version.artifact.uuid]),
        reverse("console:version_detail", args=[version.uuid]),
        reverse("console:binary_detail", args=[binary.uuid]),
    ]
    for url in pages:
        html = viewer.get(url).content.decode()
        assert 'method="post"' not in html.replace(  # only the log-out form
            f'method="post" action="{reverse("logout")}"', ""
        ), url
        assert "Create Binary" not in html


def test_it_refuses_viewers_every_write(viewer, version):
    binary = verified_binary("signable", version, target="universal")
    key = SigningKeyFactory(organization=version.organization)
    artifact = version.artifact
    posts = {
        reverse("console:artifact_create"): {"name": "a"},
        reverse("console:artifact_version_create", args=[artifact.uuid]): {"version": "9"},
        reverse("console:binary_create", args=[version.uuid]): {"target": "x86_64-linux-gnu"},
        reverse("console:binary_reset", args=[binary.uuid]): {},
        reverse("console:binary_destroy", args=[binary.uuid]): {
            "confirm_target": "universal",
            "reason": "x",
        },
        reverse("console:binary_sign", args=[binary.uuid]): {
            "signing_key": str(key.uuid),
            "signature": "00",
        },
    }
    for url, data in posts.items():
        response = viewer.post(url, data)
        assert response.status_code == 403, url
        assert b"needs the engineer or admin role" in response.content
    binary.refresh_from_db()
    assert binary.state == State.SIGNABLE
    assert Artifact.objects.count() == 1
    assert Binary.objects.count() == 1


def test_it_keeps_the_record_json_parseable(engineer, binary):
    response = engineer.get(reverse("console:binary_detail", args=[binary.uuid]))
    text = response.content.decode()
    start = text.index('id="binary-json"')
    body = text[text.index(">", start) + 1 : text.index("</pre>", start)]
    import html as html_lib

    record = json.loads(html_lib.unescape(body))
    assert record["prn"] == binary.prn
    assert record["state"] == "signable"


def test_it_isolates_versions_of_other_organizations(engineer, other_org):
    foreign = ArtifactVersionFactory(artifact__organization=other_org)
    url = reverse("console:binary_create", args=[foreign.uuid])
    assert engineer.post(url, {"target": "universal"}).status_code == 404
    assert not Binary.objects.exists()


def test_it_lets_viewers_get_download_urls_as_the_api_does(viewer, version):
    pair = KeyPair()
    binary = signed_binary(version, pair.register(version.organization), pair)
    html = viewer.get(reverse("console:binary_detail", args=[binary.uuid])).content.decode()
    assert "Get download URL" in html
    assert "Destroy binary" not in html
    response = viewer.post(reverse("console:binary_download_url", args=[binary.uuid]))
    assert response.status_code == 200
    assert b'id="download-url"' in response.content
