"""The console in a real browser: the uploader, resuming, signing, downloading, destroying,
roles and escaping, each through the pages a person would use."""

import hashlib
import re
import subprocess
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, Request, Route, expect

from binaries import hashing, tasks
from binaries.models import Binary, BinaryEvent, BinaryPart, PartState, State
from peridio_console.accounts.models import Role
from tests.browser.conftest import (
    NO_WASM_CSP,
    WASM_CSP,
    Policy,
    log_in,
    screenshot,
    wait_until,
)
from tests.console_helpers import verified_binary
from tests.factories import ArtifactVersionFactory, BinaryFactory, MembershipFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MiB = 1024 * 1024
PART = 8 * MiB  # the uploader's part size for files under 78 GiB
TARGET = "arm-linux-gnueabihf"
BINARY_URL = re.compile(r".*/binaries/[0-9a-f-]{36}/$")
XSS = '<script>alert("xss")</script><img src=x onerror=alert(1)>'


def random_file(folder: Path, size: int, name: str = "firmware.bin") -> Path:
    path = folder / name
    with path.open("wb") as out, Path("/dev/urandom").open("rb") as source:
        left = size
        while left:
            left -= out.write(source.read(min(left, MiB)))
    return path


def openssl(*args: str | Path) -> str:
    command = ["openssl", *map(str, args)]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def sha256_hex(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


class PartTraffic:
    """A page's upload requests: parts declared to the API (PUT /v1/binaries/{prn}/parts/{n}),
    part bytes PUT to their upload URLs (/transfer/parts/…), and those the server took."""

    def __init__(self, page: Page) -> None:
        self.declared: list[int] = []
        self.uploads: list[Request] = []
        self.uploaded: list[Request] = []
        page.on("request", self._sent)
        page.on("requestfinished", self._finished)

    def _sent(self, request: Request) -> None:
        declared = re.search(r"/v1/binaries/[^/]+/parts/(\d+)$", request.url)
        if request.method == "PUT" and declared:
            self.declared.append(int(declared.group(1)))
        elif request.method == "PUT" and "/transfer/parts/" in request.url:
            self.uploads.append(request)

    def _finished(self, request: Request) -> None:
        response = request.response()
        if request in self.uploads and response is not None and response.ok:
            self.uploaded.append(request)


def choose_file_and_create(page: Page, version, path: Path, target: str = TARGET) -> None:
    page.goto(f"/versions/{version.uuid}/binaries/new")
    page.get_by_label("Target").fill(target)
    page.get_by_label("File").set_input_files(path)
    page.get_by_role("button", name="Create binary").click()


def open_when_signable(page: Page) -> None:
    """The uploader's status area says signable; its link opens the binary's page."""
    status = page.locator("#upload-status")
    expect(status).to_have_attribute("data-phase", "signable", timeout=60_000)
    page.locator("#upload-status a.binary-link").click()
    page.wait_for_url(BINARY_URL)


def expect_state(page: Page, state: str) -> None:
    expect(page.locator("h1 .badge")).to_have_text(state, timeout=60_000)


def new_version(membership):
    return ArtifactVersionFactory(artifact__organization=membership.organization)


def test_it_takes_a_binary_from_upload_to_destroyed(page: Page, tmp_path: Path):
    admin = MembershipFactory(role=Role.ADMIN)
    log_in(page, admin.user.username)

    page.get_by_role("link", name="Artifacts").first.click()
    page.get_by_label("Name").fill("gateway-firmware")
    page.get_by_label("Description").fill("The gateway's root filesystem")
    page.get_by_role("button", name="Create artifact").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("gateway-firmware")
    page.get_by_label("Version").fill("2.4.0")
    page.get_by_role("button", name="Create version").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("gateway-firmware 2.4.0")

    # ~20 MB: three parts (8 MiB, 8 MiB, the rest), sent through the real uploader.
    firmware = random_file(tmp_path, 20_000_000)
    traffic = PartTraffic(page)
    page.get_by_role("link", name="Create Binary").click()
    page.get_by_label("Target").fill(TARGET)
    page.get_by_label("Description").fill("Nightly build")
    page.get_by_label("File").set_input_files(firmware)
    screenshot(page, "create-binary")
    page.get_by_role("button", name="Create binary").click()
    open_when_signable(page)
    expect_state(page, "signable")
    assert (len(traffic.uploads), sorted(traffic.declared)) == (3, [1, 2, 3])
    binary = Binary.objects.get(target=TARGET)
    assert (binary.state, binary.size) == (State.SIGNABLE, firmware.stat().st_size)
    assert binary.hash == binary.verified_hash == sha256_hex(firmware)
    expect(page.get_by_text(f"sha256:{binary.hash}").first).to_be_visible()
    screenshot(page, "binary-signable")

    page.get_by_role("link", name="2.4.0").click()
    expect(page.get_by_role("link", name=TARGET)).to_be_visible()
    screenshot(page, "version")
    page.get_by_role("link", name="Peridio Console").click()
    expect(page.locator("#state-counts li[data-state='signable'] .count")).to_have_text("1")
    screenshot(page, "dashboard")

    # Sign with openssl, as a release engineer would, after registering the public key.
    key = tmp_path / "key.pem"
    signature = tmp_path / "firmware.sig"
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key)
    public = openssl("pkey", "-in", key, "-pubout")
    openssl("dgst", "-sha256", "-sign", key, "-out", signature, firmware)
    page.get_by_role("link", name="Signing keys").click()
    page.get_by_label("Name").fill("release 2025")
    page.get_by_label("Public key").fill(public)
    page.get_by_role("button", name="Add signing key").click()
    expect(page.get_by_text("Signing key release 2025 (rsa) registered.")).to_be_visible()

    page.goto(f"/binaries/{binary.uuid}/")
    page.get_by_label("Signing key").select_option(label="release 2025 (rsa)")
    page.get_by_label("signature file").set_input_files(signature)
    page.get_by_role("button", name="Verify and attach").click()
    expect(page.get_by_text("Signature verified and attached.")).to_be_visible()
    expect_state(page, "signed")
    screenshot(page, "binary-signed")

    page.get_by_role("button", name="Get download URL").click()
    url = page.get_by_role("textbox", name="Download URL").input_value()
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200
    assert response.content == firmware.read_bytes()

    page.get_by_label("Type the target to confirm").fill(TARGET)
    page.get_by_label("Reason:", exact=True).fill("Superseded by 2.4.1: bricks rev-A boards")
    page.get_by_role("button", name="Destroy binary").click()
    expect(page.get_by_text("The binary was destroyed")).to_be_visible()
    expect_state(page, "destroyed")
    event = BinaryEvent.objects.get(binary=binary, to_state=State.DESTROYED)
    assert event.reason == "Superseded by 2.4.1: bricks rev-A boards"

    page.get_by_role("link", name="Audit").click()
    expect(page.get_by_role("cell", name="binary.destroyed")).to_be_visible()
    screenshot(page, "audit")
    page.get_by_role("link", name="destroyed binaries").click()
    row = page.get_by_role("row").filter(has_text=TARGET)
    expect(row).to_contain_text("Superseded by 2.4.1: bricks rev-A boards")
    expect(row).to_contain_text(admin.user.username)
    screenshot(page, "audit-destroyed")


def test_it_resumes_an_interrupted_upload_sending_only_the_missing_parts(
    page: Page, tmp_path: Path
):
    engineer = MembershipFactory(role=Role.ENGINEER)
    version = new_version(engineer)
    firmware = random_file(tmp_path, 4 * PART + 3 * MiB + 123)  # five parts
    log_in(page, engineer.user.username)

    # Two parts get through; every other upload hangs until each worker waits on one (5 parts,
    # 4 at a time: 3 hang). Then those connections drop, and the tab is closed before the
    # uploader's first retry (a second later).
    passed: list[Route] = []
    hanging: list[Route] = []

    def flaky_network(route: Route) -> None:
        if len(passed) < 2:
            passed.append(route)
            route.continue_()
        else:
            hanging.append(route)  # never answered

    page.route("**/transfer/parts/**", flaky_network)
    traffic = PartTraffic(page)
    choose_file_and_create(page, version, firmware)
    wait_until(page, lambda: len(traffic.uploaded) == 2 and len(hanging) == 3)
    for route in hanging:
        route.abort("connectionreset")
    page.close()
    binary = Binary.objects.get(artifact_version=version, target=TARGET)
    assert binary.state == State.UPLOADABLE
    uploaded = BinaryPart.objects.filter(binary=binary, state=PartState.VALID)
    assert uploaded.count() >= 2

    # The reopened page must skip what the server holds. Ask the page what it was told: on a
    # loaded machine a request caught mid-interception can get through as the tab goes.
    again = page.context.new_page()
    traffic = PartTraffic(again)
    with again.expect_response(lambda r: r.request.method == "GET" and "/parts" in r.url) as listed:
        choose_file_and_create(again, version, firmware)
    parts = listed.value.json()["binary_parts"]
    held = {part["index"] for part in parts if part["state"] == PartState.VALID}
    assert 2 <= len(held) < 5
    open_when_signable(again)
    expect_state(again, "signable")
    assert sorted(traffic.declared) == sorted({1, 2, 3, 4, 5} - held)
    assert len(traffic.uploads) == 5 - len(held)
    binary.refresh_from_db()
    assert binary.verified_hash == sha256_hex(firmware)


@pytest.mark.parametrize(
    ("policy", "hasher"),
    [(WASM_CSP, "hash-wasm"), (NO_WASM_CSP, "javascript")],
    ids=["wasm", "no-wasm"],
)
def test_it_uploads_the_content_of_an_uploadable_binary_from_its_page(
    page: Page, csp: Policy, tmp_path: Path, policy: str, hasher: str
):
    csp.value = policy
    engineer = MembershipFactory(role=Role.ENGINEER)
    size = PART + 5 * MiB + 17
    firmware = random_file(tmp_path, size)
    other = random_file(tmp_path, size, name="other.bin")
    binary = BinaryFactory(
        artifact_version=new_version(engineer), hash=sha256_hex(firmware), size=size
    )
    log_in(page, engineer.user.username)
    page.goto(f"/binaries/{binary.uuid}/")
    expect_state(page, "uploadable")

    page.get_by_label("File").set_input_files(other)
    page.get_by_role("button", name="Upload content").click()
    expect(page.locator("#upload-status .upload-message")).to_contain_text(
        f"This binary expects content with SHA-256 sha256:{binary.hash}, but the chosen file's "
        f"is sha256:{sha256_hex(other)}; choose the file it was created for."
    )
    expect(page.get_by_role("button", name="Resume upload")).to_be_hidden()
    assert BinaryPart.objects.filter(binary=binary).count() == 0  # not a byte of the other file
    expect(page.locator("#binary-drop-zone")).to_have_attribute("data-hasher", hasher)

    traffic = PartTraffic(page)
    page.get_by_label("File").set_input_files(firmware)
    page.get_by_role("button", name="Upload content").click()
    expect_state(page, "signable")
    assert (len(traffic.uploads), sorted(traffic.declared)) == (2, [1, 2])
    assert Binary.objects.filter(pk=binary.pk, verified_hash=binary.hash).exists()


def test_it_shows_the_verification_live_on_the_binary_page(
    page: Page, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    queued: list[int] = []
    monkeypatch.setattr(tasks.verify_binary, "delay", queued.append)  # no worker yet
    engineer = MembershipFactory(role=Role.ENGINEER)
    version = new_version(engineer)
    firmware = random_file(tmp_path, 3 * MiB)
    log_in(page, engineer.user.username)

    choose_file_and_create(page, version, firmware)
    expect(page.locator("#upload-status")).to_have_attribute("data-phase", "verifying")
    page.locator("#upload-status a.binary-link").click()
    expect_state(page, "hashable")
    expect(page.get_by_text("Upload complete; waiting for verification to start.")).to_be_visible()

    hashing.verify(queued.pop())  # the worker's turn; the page polls, then reloads
    expect_state(page, "signable")
    expect(page.get_by_text("Content verified: it matches the declared SHA-256")).to_be_visible()


def test_it_shows_a_viewer_no_write_buttons(page: Page):
    viewer = MembershipFactory(role=Role.VIEWER)
    version = new_version(viewer)
    signable = verified_binary("signable", version, target="aarch64-linux-gnu")
    uploadable = verified_binary("uploadable", version, target="x86_64-linux-gnu")
    log_in(page, viewer.user.username)

    pages = [
        "/",
        "/artifacts/",
        f"/artifacts/{version.artifact.uuid}/",
        f"/versions/{version.uuid}/",
        f"/versions/{version.uuid}/binaries/new",
        f"/binaries/{signable.uuid}/",
        f"/binaries/{uploadable.uuid}/",
        "/signing-keys/",
        "/api-keys/",
    ]
    for url in pages:
        page.goto(url)
        buttons = set(page.get_by_role("button").all_inner_texts())
        # Reading, filtering and one's own API keys are not writes to the organization.
        assert buttons <= {"Log out", "Filter", "Copy JSON", "Create API key"}, (url, buttons)
        expect(page.get_by_role("link", name="Create Binary")).to_have_count(0)
    page.goto(f"/binaries/{signable.uuid}/")
    expect(
        page.get_by_text("You can look; changes need the engineer or admin role.")
    ).to_be_visible()


def test_it_renders_scripts_in_descriptions_and_metadata_as_text(
    page: Page, csp: Policy, tmp_path: Path
):
    csp.value = ""  # no policy at all: the escaping alone must hold
    engineer = MembershipFactory(role=Role.ENGINEER)
    log_in(page, engineer.user.username)

    page.goto("/artifacts/")
    page.get_by_label("Name").fill("xss-firmware")
    page.get_by_label("Description").fill(XSS)
    page.get_by_label("Custom metadata").fill('{"note": "' + XSS.replace('"', '\\"') + '"}')
    page.get_by_role("button", name="Create artifact").click()
    expect(page.get_by_text(XSS, exact=True)).to_be_visible()
    expect(page.locator("details pre")).to_contain_text(XSS.replace('"', '\\"'))
    page.get_by_label("Version").fill("1.0.0")
    page.get_by_label("Description").fill(XSS)
    page.get_by_role("button", name="Create version").click()
    expect(page.get_by_text(XSS, exact=True)).to_be_visible()

    page.get_by_role("link", name="Create Binary").click()
    page.get_by_label("Target").fill(TARGET)
    page.get_by_label("Description").fill(XSS)
    page.get_by_label("Custom metadata").fill('{"<script>": "' + XSS.replace('"', '\\"') + '"}')
    page.get_by_label("File").set_input_files(random_file(tmp_path, 4096))
    page.get_by_role("button", name="Create binary").click()
    open_when_signable(page)
    expect_state(page, "signable")
    expect(page.get_by_text(XSS, exact=True)).to_be_visible()
    expect(page.locator("pre.json").first).to_contain_text('"<script>": ')
    expect(page.locator("#binary-json")).to_contain_text(XSS.replace('"', '\\"'))
    assert page.locator("main script, main img").count() == 0
