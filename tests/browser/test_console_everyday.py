"""The console for every day, in Chromium: signing in the browser (the private key never sent),
confirmations before destructive actions, POST-redirect-GET, truthful badges, the dashboard
against the API, downloads, phones at 390 px and an accessibility check on every page."""

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone
from playwright.sync_api import Page, Request, expect

from binaries import signatures
from binaries.models import Binary, BinarySignature, SigningKey, State
from peridio_console.accounts.actors import Actor
from peridio_console.accounts.models import ApiKey, AuditEvent, Membership, Role
from tests.browser.conftest import log_in, screenshot
from tests.console_helpers import KeyPair, signed_binary, verified_binary
from tests.factories import (
    ApiKeyFactory,
    ArtifactVersionFactory,
    BinaryPartFactory,
    MembershipFactory,
    SigningKeyFactory,
)
from tests.signing_helpers import generate, private_pem, signable_binary

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
PHONE = {"width": 390, "height": 844}


class Bodies:
    """Every request the page sends, with its body, to prove what never leaves the browser."""

    def __init__(self, page: Page) -> None:
        self.requests: list[Request] = []
        page.on("request", self._sent)

    def _sent(self, request: Request) -> None:
        self.requests.append(request)

    def containing(self, text: str) -> list[str]:
        found = []
        for request in self.requests:
            body = request.post_data_buffer or b""
            if text.encode() in body or text in request.url:
                found.append(f"{request.method} {request.url}")
        return found


def pem_inner(pem: str) -> list[str]:
    """The base64 lines of a PEM (any one of them in a body would leak the key)."""
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def new_version(membership):
    return ArtifactVersionFactory(artifact__organization=membership.organization)


def open_binary(page: Page, binary: Binary) -> None:
    page.goto(f"/binaries/{binary.uuid}/")


# --- Signing in the browser -------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["ed25519", "rsa-2048", "ecdsa-p256"])
def test_it_signs_in_the_browser_without_sending_the_private_key(
    page: Page, tmp_path: Path, algorithm: str
):
    engineer = MembershipFactory(role=Role.ENGINEER)
    binary = verified_binary("signable", new_version(engineer), target="aarch64-linux-gnu")
    private = generate(algorithm)
    key = SigningKeyFactory(organization=engineer.organization, name="release", private=private)
    pem = private_pem(private)
    key_file = tmp_path / "private_key.pem"
    key_file.write_text(pem)
    log_in(page, engineer.user.username)
    bodies = Bodies(page)

    open_binary(page, binary)
    expect(page.get_by_label("SHA-256 of the verified content")).to_have_value(binary.verified_hash)
    page.get_by_label("Signing key").select_option(label=f"release ({key.algorithm})")
    page.get_by_label("Private key file").set_input_files(key_file)
    if algorithm == "ed25519":
        screenshot(page, "binary-sign-in-browser")
    page.get_by_role("button", name="Sign in the browser and attach").click()
    expect(page.get_by_text("Signature verified and attached.")).to_be_visible()
    expect(page.locator("h1 .badge")).to_have_text("signed")

    signature = BinarySignature.objects.get(binary=binary)
    expected = {
        "ed25519": "ed25519-hex-digest",
        "rsa-2048": "rsa-pkcs1v15-sha256",
        "ecdsa-p256": "ecdsa-sha256",
    }
    assert signature.scheme == expected[algorithm]
    if algorithm == "ecdsa-p256":
        assert bytes(signature.signature)[0] == 0x30  # DER, as openssl writes it
    assert [p for p in bodies.requests if p.method == "POST"], "nothing was posted"
    for line in pem_inner(pem):
        assert bodies.containing(line) == [], "a request carried the private key"
    assert bodies.containing("PRIVATE KEY") == []


def test_it_refuses_a_private_key_that_does_not_match_before_sending(page: Page, tmp_path: Path):
    engineer = MembershipFactory(role=Role.ENGINEER)
    binary = verified_binary("signable", new_version(engineer))
    SigningKeyFactory(
        organization=engineer.organization, name="release", private=generate("rsa-2048")
    )
    other = tmp_path / "other.pem"
    other.write_text(private_pem(generate("rsa-2048")))
    wrong_kind = tmp_path / "ed.pem"
    wrong_kind.write_text(private_pem(generate("ed25519")))
    log_in(page, engineer.user.username)
    open_binary(page, binary)
    bodies = Bodies(page)

    page.get_by_label("Private key file").set_input_files(other)
    page.get_by_role("button", name="Sign in the browser and attach").click()
    status = page.locator("#sign-status")
    expect(status).to_contain_text("does not belong to signing key release (rsa)")
    expect(status).to_contain_text("nothing was sent")
    page.get_by_label("Private key file").set_input_files(wrong_kind)
    page.get_by_role("button", name="Sign in the browser and attach").click()
    expect(status).to_contain_text("This private key is ed25519 but signing key release (rsa)")
    public = tmp_path / "public.pem"
    public.write_text(SigningKey.objects.get().public_key_pem)
    page.get_by_label("Private key file").set_input_files(public)
    page.get_by_role("button", name="Sign in the browser and attach").click()
    expect(status).to_contain_text("This file is a public key")

    assert [r for r in bodies.requests if r.method == "POST"] == []
    assert not BinarySignature.objects.exists()
    binary.refresh_from_db()
    assert binary.state == State.SIGNABLE


def test_it_removes_a_signature_with_a_reason(page: Page):
    engineer = MembershipFactory(role=Role.ENGINEER)
    pair = KeyPair()
    key = pair.register(engineer.organization, name="old key")
    binary = signed_binary(new_version(engineer), key, pair)
    log_in(page, engineer.user.username)
    open_binary(page, binary)

    confirm = page.get_by_role("button", name="Yes, remove the signature by old key")
    expect(confirm).to_be_hidden()
    page.locator('summary[aria-label="Remove the signature by old key"]').click()
    page.get_by_label("Reason", exact=True).fill("signed by mistake")
    confirm.click()
    expect(page.get_by_text("The signature by old key was removed.")).to_be_visible()
    assert not BinarySignature.objects.filter(binary=binary).exists()
    event = AuditEvent.objects.get(action="binary_signature.deleted")
    assert event.details["reason"] == "signed by mistake"
    expect(page.locator("h1 .badge")).to_have_text("signed — no signature")


# --- States shown as they are -------------------------------------------------------------------


def test_it_shows_revoked_signatures_and_destroyed_history_truthfully(page: Page):
    admin = MembershipFactory(role=Role.ADMIN)
    version = new_version(admin)
    pair = KeyPair()
    key = pair.register(admin.organization, name="only key")
    binary = signed_binary(version, key, pair, target="aarch64-linux-gnu")
    signatures.signing_key_revoke(key=key, actor=Actor.system("test"))
    log_in(page, admin.user.username)

    open_binary(page, binary)
    expect(page.locator("h1 .badge")).to_have_text("signed — signatures revoked")
    expect(page.get_by_text("every signature of this binary was revoked").first).to_be_visible()
    page.goto(f"/versions/{version.uuid}/")
    row = page.get_by_role("row").filter(has_text="aarch64-linux-gnu")
    expect(row.locator(".badge")).to_have_text("signed — signatures revoked")

    other_pair = KeyPair()
    other = other_pair.register(admin.organization, name="second key")
    gone = signed_binary(version, other, other_pair, target="x86_64-linux-gnu")
    BinaryPartFactory(binary=gone, index=1)
    Binary.objects.filter(pk=gone.pk).update(state=State.DESTROYED)
    open_binary(page, gone)
    expect(page.locator("#signatures .badge")).to_have_text("historical (binary destroyed)")
    expect(page.get_by_text("gone (", exact=False)).to_be_visible()
    expect(page.locator(".badge.valid")).to_have_count(0)


# --- Confirmations and POST-redirect-GET --------------------------------------------------------


def test_each_destructive_action_needs_its_confirmation(page: Page):
    admin = MembershipFactory(role=Role.ADMIN)
    version = new_version(admin)
    engineer = MembershipFactory(role=Role.ENGINEER, organization=admin.organization)
    api_key = ApiKeyFactory(organization=admin.organization, user=admin.user, name="ci")
    signing_key = SigningKeyFactory(organization=admin.organization, name="release")
    binary = verified_binary("signable", version)
    log_in(page, admin.user.username)

    # Closed, a confirmation's form cannot be used: its button is hidden until it opens.
    steps = [
        ("/api-keys/", f"Revoke API key {api_key.prefix}", None),
        ("/signing-keys/", "Revoke signing key release", "key leaked"),
        ("/members/", f"Remove {engineer.user.username}", None),
        (f"/binaries/{binary.uuid}/", "Reset to uploadable", "wrong file"),
    ]
    for url, action, reason in steps:
        page.goto(url)
        opener = page.locator("summary", has_text=action).or_(
            page.locator(f'summary[aria-label="{action}"]')
        )
        confirm = page.get_by_role("button", name=re.compile("^Yes, "))
        expect(confirm).to_be_hidden()
        opener.focus()  # by keyboard alone: Enter opens it, Tab reaches its button
        page.keyboard.press("Enter")
        expect(confirm).to_be_visible()
        if reason:
            page.locator("details[open] textarea[name=reason]").fill(reason)
        confirm.focus()
        page.keyboard.press("Enter")
        expect(page.locator(".messages li.success")).to_be_visible()

    api_key.refresh_from_db()
    signing_key.refresh_from_db()
    binary.refresh_from_db()
    assert api_key.revoked_at is not None
    assert signing_key.revoked_at is not None
    assert not Membership.objects.filter(pk=engineer.pk).exists()
    assert binary.state == State.UPLOADABLE


def test_reloading_after_creating_an_api_key_creates_none(page: Page):
    engineer = MembershipFactory(role=Role.ENGINEER)
    log_in(page, engineer.user.username)
    page.goto("/api-keys/")
    page.get_by_label("Name").fill("laptop")
    page.get_by_role("button", name="Create API key").click()
    secret = page.get_by_label(re.compile("^API key laptop")).input_value()
    assert secret.startswith("pdo_")
    page.reload()
    expect(page.get_by_text("Your new API key")).to_have_count(0)
    assert ApiKey.objects.filter(user=engineer.user).count() == 1


# --- Dashboard and downloads --------------------------------------------------------------------


def test_the_dashboard_counts_agree_with_the_api(page: Page):
    admin = MembershipFactory(role=Role.ADMIN)
    version = new_version(admin)
    for state, target in [
        ("uploadable", "a-linux"),
        ("uploadable", "b-linux"),
        ("signable", "c-linux"),
        ("destroyed", "d-linux"),
    ]:
        verified_binary(state, version, target=target)
    stale = verified_binary("uploadable", version, target="e-linux")
    two_days_ago = timezone.now() - timedelta(days=2)
    Binary.objects.filter(pk=stale.pk).update(created_at=two_days_ago)
    pair = KeyPair()
    signed_binary(version, pair.register(admin.organization), pair, target="f-linux")
    secret = ApiKeyFactory(organization=admin.organization, user=admin.user).secret
    log_in(page, admin.user.username)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto("/")
    screenshot(page, "dashboard")

    for state in State.values:
        listed = page.request.get(
            f"/v1/binaries?state={state}&limit=100",
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert listed.ok, listed.text()
        expected = len(listed.json()["binaries"])
        shown = page.locator(f"#state-counts li[data-state='{state}'] .count")
        expect(shown).to_have_text(str(expected))
    attention = page.locator("ul.attention")
    expect(attention).to_contain_text("e-linux")
    expect(attention).not_to_contain_text("a-linux")
    page.get_by_role("link", name=re.compile("f-linux")).first.click()
    expect(page.locator("h1")).to_contain_text("f-linux")


def test_the_download_button_streams_the_content(page: Page):
    engineer = MembershipFactory(role=Role.ENGINEER)
    content = b"firmware bytes " * 1000
    actor = Actor.system("test setup")
    binary = signable_binary(Client(), new_version(engineer), actor, content)
    pair = KeyPair()
    signatures.signature_create(
        binary=binary,
        signature=pair.sign(binary).hex(),
        signing_key=pair.register(engineer.organization),
        actor=actor,
    )
    log_in(page, engineer.user.username)
    open_binary(page, binary)
    expect(page.locator("h1 .badge")).to_have_text("signed")
    with page.expect_download() as started:
        page.get_by_role("button", name="Download", exact=True).click()
    assert Path(started.value.path()).read_bytes() == content
    issued = AuditEvent.objects.filter(action="download_url.issued", object_prn=binary.prn)
    assert issued.count() == 1


# --- Phones and accessibility -------------------------------------------------------------------


def console_pages(admin: Membership) -> list[str]:
    version = new_version(admin)
    pair = KeyPair()
    key = pair.register(admin.organization, name="release key with a long name")
    signed = signed_binary(version, key, pair, target="aarch64-unknown-linux-gnu-with-a-long-name")
    signable = verified_binary("signable", version, target="x86_64-linux-gnu")
    uploadable = verified_binary("uploadable", version, target="riscv64-linux-gnu")
    BinaryPartFactory(binary=uploadable, index=1)
    destroyed = verified_binary("destroyed", version, target="armv7-linux")
    ApiKeyFactory(organization=admin.organization, user=admin.user, name="ci")
    return [
        "/",
        "/artifacts/",
        f"/artifacts/{version.artifact.uuid}/",
        f"/versions/{version.uuid}/",
        f"/versions/{version.uuid}/binaries/new",
        f"/binaries/{signed.uuid}/",
        f"/binaries/{signable.uuid}/",
        f"/binaries/{uploadable.uuid}/",
        f"/binaries/{destroyed.uuid}/",
        "/signing-keys/",
        "/api-keys/",
        "/members/",
        "/invitations/",
        "/audit/",
        "/audit/destroyed",
    ]


# The innermost elements that reach past the screen's right edge, to say what is too wide.
WIDEST = """() => Array.from(document.querySelectorAll('body *'))
  .filter(e => e.getBoundingClientRect().right > 391)
  .filter(e => !Array.from(e.children).some(c => c.getBoundingClientRect().right > 391))
  .slice(0, 5).map(e => e.tagName + '.' + e.className + ' ' + (e.textContent || '').slice(0, 40))"""


def test_every_page_fits_a_phone(page: Page):
    admin = MembershipFactory(role=Role.ADMIN)
    pages = console_pages(admin)
    log_in(page, admin.user.username)
    page.set_viewport_size(PHONE)
    too_wide = {}
    for url in pages:
        page.goto(url)
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > 390:
            too_wide[url] = (width, page.evaluate(WIDEST))
    assert not too_wide, too_wide
    page.goto(pages[5])
    screenshot(page, "binary-phone")
    # The top bar is a menu: closed, its links are hidden; opened, they are there.
    expect(page.get_by_role("link", name="Signing keys")).to_be_hidden()
    page.get_by_text("Menu").click()
    expect(page.get_by_role("link", name="Signing keys")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "menu-phone")
    page.goto("/login/")  # the log-in page, logged out
    page.context.clear_cookies()
    page.goto("/login/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def axe_violations(page: Page) -> list[dict]:
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=AXE.read_text())
    results = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
    )
    return [v for v in results if v["impact"] in ("serious", "critical")]


def test_every_page_passes_the_accessibility_check(page: Page, csp):
    csp.value = ""  # axe is injected as a script tag; the console's own policy would refuse it
    admin = MembershipFactory(role=Role.ADMIN)
    pages = console_pages(admin)
    log_in(page, admin.user.username)
    found: dict[object, object] = {}
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        for url in pages:
            page.goto(url)
            serious = axe_violations(page)
            if serious:
                found[(width, url)] = [
                    (v["id"], [n["target"] for n in v["nodes"]][:3]) for v in serious
                ]
    page.context.clear_cookies()
    page.goto("/login/")
    serious = axe_violations(page)
    if serious:
        found["/login/"] = [v["id"] for v in serious]
    assert not found, json.dumps({str(k): v for k, v in found.items()}, indent=1)
    # The check can fail: faint text on this page is reported.
    page.evaluate(
        "document.querySelector('main').insertAdjacentHTML('beforeend', "
        "'<p style=\"color:#c8c8c8;background:#fff\">faint</p>')"
    )
    assert "color-contrast" in {v["id"] for v in axe_violations(page)}


def contrast(first: str, second: str) -> float:
    def luminance(css: str) -> float:
        channels = [int(n) / 255 for n in re.findall(r"\d+", css)[:3]]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted((luminance(first), luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_the_keyboard_reaches_the_skip_link_and_the_log_in_keeps_the_username(page: Page):
    member = MembershipFactory(role=Role.VIEWER)
    page.goto("/login/")
    page.get_by_label("Username").fill(member.user.username)
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("That username and password do not match")).to_be_visible()
    expect(page.get_by_label("Username")).to_have_value(member.user.username)
    log_in(page, member.user.username)
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_visible()
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    # Non-text contrast (WCAG 1.4.11, which axe does not check): input borders and the focus
    # ring against the card's white, at least 3:1.
    page.goto("/api-keys/")
    name = page.get_by_label("Name")
    name.focus()
    style = name.evaluate(
        "e => { const s = getComputedStyle(e); return [s.borderTopColor, s.outlineColor]; }"
    )
    for color in style:
        assert contrast(color, "rgb(255, 255, 255)") >= 3, style
    icon = page.request.get(page.locator("link[rel=icon]").get_attribute("href") or "")
    assert icon.ok and "svg" in icon.headers["content-type"]
