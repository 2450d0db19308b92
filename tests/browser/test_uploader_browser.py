"""Create Binary's uploader in Chromium (issue 18): hashing in a worker while parts upload,
the status area (hashing, uploading, verifying, signable, stopped with the server's words),
resuming after a corrupted part or a cut network, the taken-target check before hashing,
discarding an unfinished upload, and the warning before leaving mid-upload. Each status is
saved as a screenshot under test-artifacts/screenshots/upload-*.png."""

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Dialog, Page, Route, expect

from binaries import hashing, tasks
from binaries.models import Binary, BinaryPart, PartState, State
from peridio_console.accounts.models import Role
from tests.browser.conftest import NO_WASM_CSP, PageProblems, Policy, screenshot, wait_until
from tests.browser.test_console_browser import (
    BINARY_URL,
    PART,
    TARGET,
    PartTraffic,
    choose_file_and_create,
    expect_state,
    new_version,
    open_when_signable,
    random_file,
    sha256_hex,
)
from tests.console_helpers import verified_binary
from tests.factories import BinaryFactory, MembershipFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MiB = 1024 * 1024


def status(page: Page):
    return page.locator("#upload-status")


def message(page: Page):
    return page.locator("#upload-status .upload-message")


def route_uploads(
    page: Page, first: Callable[[Route], None], rest: Callable[[Route], None]
) -> None:
    """The first part upload (whichever part it is) through `first`, the others through `rest`."""
    seen: list[str] = []

    def handle(route: Route) -> None:
        # Counted before acting: continuing a request lets Playwright dispatch the next
        # request's handler meanwhile, which must already see this one.
        chosen = rest if seen else first
        seen.append(route.request.url)
        chosen(route)

    page.route("**/transfer/parts/**", handle)


def engineer_with_version(page: Page):
    engineer = MembershipFactory(role=Role.ENGINEER)
    version = new_version(engineer)
    from tests.browser.conftest import log_in

    log_in(page, engineer.user.username)
    return version


def test_it_takes_a_small_file_to_signable(page: Page, tmp_path: Path):
    version = engineer_with_version(page)
    firmware = random_file(tmp_path, 3 * MiB + 5)
    traffic = PartTraffic(page)
    choose_file_and_create(page, version, firmware)
    expect(status(page)).to_have_attribute("data-phase", "signable", timeout=60_000)
    expect(page.locator("#upload-status .upload-hashing")).to_contain_text("Hashed 3.0 MiB in")
    expect(page.locator("#upload-status .upload-sending")).to_contain_text(
        "Uploading: 1 of 1 parts saved · 3.0 MiB"
    )
    binary = Binary.objects.get(artifact_version=version, target=TARGET)
    expect(message(page)).to_contain_text(f"SHA-256 sha256:{sha256_hex(firmware)}")
    screenshot(page, "upload-signable")
    assert (binary.state, binary.hash, len(traffic.uploads)) == (
        State.SIGNABLE,
        sha256_hex(firmware),
        1,
    )
    open_when_signable(page)
    expect(page.get_by_text("3.0 MiB").first).to_be_visible()  # the page says MiB as well


def test_it_takes_100_mib_to_signable_hashing_while_parts_upload(
    page: Page, csp: Policy, tmp_path: Path
):
    csp.value = NO_WASM_CSP  # plain-JavaScript hashing: slower, so its status can be seen
    version = engineer_with_version(page)
    firmware = random_file(tmp_path, 100 * MiB)
    traffic = PartTraffic(page)
    choose_file_and_create(page, version, firmware)
    expect(status(page)).to_have_attribute("data-phase", "hashing")
    screenshot(page, "upload-hashing")
    expect(page.locator("#upload-status .upload-hashing")).to_contain_text(" MiB/s · ")
    # Parts go out before the whole file is hashed: the point of hashing in a worker.
    wait_until(page, lambda: len(traffic.uploads) >= 1, timeout=60)
    hashed_when_first_sent = page.locator("#upload-status").get_attribute("data-phase")
    expect(status(page)).to_have_attribute("data-phase", "signable", timeout=120_000)
    expect(page.locator("#binary-drop-zone")).to_have_attribute("data-hasher", "javascript")
    binary = Binary.objects.get(artifact_version=version, target=TARGET)
    assert binary.verified_hash == sha256_hex(firmware)
    assert sorted(traffic.declared) == list(range(1, 14))  # 8 MiB parts, as the CLI's
    assert len(traffic.uploaded) == 13
    assert hashed_when_first_sent == "hashing", hashed_when_first_sent


def test_it_stops_on_a_part_corrupted_in_flight_with_the_servers_reason_then_resumes(
    page: Page, tmp_path: Path
):
    version = engineer_with_version(page)
    firmware = random_file(tmp_path, 3 * PART)
    held: list[Route] = []

    def hold(route: Route) -> None:
        held.append(route)

    page.route("**/transfer/parts/**", hold)
    traffic = PartTraffic(page)
    choose_file_and_create(page, version, firmware)
    # All three parts on their way; the first to leave arrives corrupted, the others later.
    wait_until(page, lambda: len(held) == 3, timeout=60)
    held[0].continue_(post_data=os.urandom(PART))
    expect(status(page)).to_have_attribute("data-phase", "stopped", timeout=60_000)
    binary = Binary.objects.get(artifact_version=version, target=TARGET)
    bad = BinaryPart.objects.get(binary=binary, state=PartState.INVALID_HASH)
    reason = f"Stopped: Part {bad.index} was declared as sha256:{bad.hash} but the bytes"
    expect(message(page)).to_contain_text(reason)
    expect(message(page)).to_contain_text("2 part(s) already on their way may still arrive.")
    # The parts still on their way arrive; the reason stays, and nothing says "uploading".
    for route in held[1:]:
        route.continue_()
    wait_until(page, lambda: len(traffic.uploaded) == 2)
    expect(message(page)).to_contain_text("2 of 3 parts saved.")
    expect(message(page)).to_contain_text(reason)
    expect(message(page)).to_contain_text("Resume sends only the parts the server does not hold.")
    expect(page.locator("#upload-status .upload-sending")).not_to_contain_text(" left")
    expect(status(page)).to_have_attribute("data-phase", "stopped")
    screenshot(page, "upload-stopped")

    page.unroute("**/transfer/parts/**")
    resumed = PartTraffic(page)
    page.get_by_role("button", name="Resume upload").click()
    expect(status(page)).to_have_attribute("data-phase", "signable", timeout=60_000)
    assert (resumed.declared, len(resumed.uploads)) == ([bad.index], 1)
    binary.refresh_from_db()
    assert binary.verified_hash == sha256_hex(firmware)


def test_it_resumes_after_the_network_is_cut_sending_only_the_missing_parts(
    page: Page, tmp_path: Path
):
    version = engineer_with_version(page)
    firmware = random_file(tmp_path, 3 * PART)
    route_uploads(page, first=Route.continue_, rest=lambda r: r.abort("connectionreset"))
    traffic = PartTraffic(page)
    choose_file_and_create(page, version, firmware)
    expect(message(page)).to_contain_text("Trying again in", timeout=30_000)
    expect(status(page)).not_to_have_attribute("data-phase", "stopped")
    # Retries with backoff (about 16 s in all), then one stop that says what resuming does.
    expect(status(page)).to_have_attribute("data-phase", "stopped", timeout=60_000)
    expect(message(page)).to_contain_text("Stopped: The network dropped while sending a part.")
    expect(message(page)).to_contain_text("1 of 3 parts saved.")
    binary = Binary.objects.get(artifact_version=version, target=TARGET)
    saved = set(
        BinaryPart.objects.filter(binary=binary, state=PartState.VALID).values_list(
            "index", flat=True
        )
    )
    assert len(saved) == 1 and len(traffic.uploaded) == 1

    page.unroute("**/transfer/parts/**")
    resumed = PartTraffic(page)
    page.get_by_role("button", name="Resume upload").click()
    expect(status(page)).to_have_attribute("data-phase", "signable", timeout=60_000)
    assert sorted(resumed.declared) == sorted({1, 2, 3} - saved)
    assert len(resumed.uploads) == 2
    binary.refresh_from_db()
    assert binary.verified_hash == sha256_hex(firmware)


def test_it_finds_a_taken_target_before_hashing_and_links_to_its_binary(page: Page, tmp_path: Path):
    version = engineer_with_version(page)
    held = verified_binary("signable", version, target=TARGET)
    traffic = PartTraffic(page)
    choose_file_and_create(page, version, random_file(tmp_path, 2 * MiB))
    expect(status(page)).to_have_attribute("data-phase", "refused")
    expect(message(page)).to_contain_text(
        f"already has a binary for target '{TARGET}' ({held.prn}, signable); sign it, or "
        "destroy it, or use another target."
    )
    # Nothing was hashed (the worker never started) nor sent.
    expect(page.locator("#binary-drop-zone")).not_to_have_attribute("data-hasher", "hash-wasm")
    assert page.locator("#binary-drop-zone").get_attribute("data-hasher") is None
    assert traffic.declared == []
    page.locator("#upload-status a.binary-link").click()
    page.wait_for_url(BINARY_URL)
    assert page.url.endswith(f"/binaries/{held.uuid}/")


def test_it_discards_an_uploadable_binary_which_frees_its_target(page: Page, tmp_path: Path):
    version = engineer_with_version(page)
    abandoned = BinaryFactory(artifact_version=version, target=TARGET, size=50 * MiB)
    page.goto(f"/binaries/{abandoned.uuid}/")
    expect(page.get_by_role("button", name="Upload content")).to_be_visible()
    page.get_by_label("Type the target to confirm").fill(TARGET)
    page.get_by_label("Reason:", exact=True).fill("Wrong build uploaded")
    page.get_by_role("button", name="Discard binary").click()
    expect(page.get_by_text(f"target {TARGET} is free for another binary")).to_be_visible()
    expect_state(page, "destroyed")
    abandoned.refresh_from_db()
    assert abandoned.state == State.DESTROYED
    assert abandoned.events.get(to_state=State.DESTROYED).reason == "Wrong build uploaded"

    choose_file_and_create(page, version, random_file(tmp_path, MiB))
    expect(status(page)).to_have_attribute("data-phase", "signable", timeout=60_000)


def test_it_warns_before_the_tab_closes_during_an_upload(
    page: Page, problems: PageProblems, tmp_path: Path
):
    version = engineer_with_version(page)
    hanging: list[Route] = []

    def hold(route: Route) -> None:
        hanging.append(route)  # never answered

    page.route("**/transfer/parts/**", hold)
    choose_file_and_create(page, version, random_file(tmp_path, 2 * PART))
    wait_until(page, lambda: len(hanging) == 2)
    expect(status(page)).to_have_attribute("data-phase", "uploading")
    screenshot(page, "upload-uploading")

    asked: list[Dialog] = []

    def seen(dialog: Dialog) -> None:
        asked.append(dialog)

    page.on("dialog", seen)
    page.close(run_before_unload=True)
    wait_until(page, lambda: bool(asked), timeout=10)
    assert asked[0].type == "beforeunload"
    assert problems.dialogs == ["beforeunload: "]  # the dialog this test expects, dismissed
    problems.dialogs.clear()
    for route in hanging:
        route.abort("connectionreset")


def test_it_shows_verifying_until_the_server_says_signable(
    page: Page, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    queued: list[int] = []
    monkeypatch.setattr(tasks.verify_binary, "delay", queued.append)  # no worker yet
    version = engineer_with_version(page)
    firmware = random_file(tmp_path, 2 * MiB)
    choose_file_and_create(page, version, firmware)
    expect(status(page)).to_have_attribute("data-phase", "verifying")
    expect(message(page)).to_contain_text("The server is checking SHA-256 and size")
    screenshot(page, "upload-verifying")
    wait_until(page, lambda: bool(queued))
    hashing.verify(queued.pop())
    expect(status(page)).to_have_attribute("data-phase", "signable")
