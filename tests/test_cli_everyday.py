"""The `peridio` command line for every day, driven through its real entry point against a live
server: downloads that never damage a file, every check before the first byte, scripting
(global options anywhere, --all, closed pipes), destroy confirmation, networks (time-outs, a
dropped connection mid-upload, HTML error pages), help, and progress in a 60-column terminal."""

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli_helpers import (
    PERIDIO,
    MiB,
    Proxy,
    create_args,
    in_terminal,
    one_error_line,
    random_file,
    running_stack,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with running_stack(tmp_path_factory.mktemp("cli-everyday")) as running:
        yield running


def openssl_key(path: Path, algorithm: str = "ed25519", *extra: str) -> Path:
    args = ["openssl", "genpkey", "-algorithm", algorithm, "-out", str(path), *extra]
    assert subprocess.run(args, capture_output=True).returncode == 0
    return path


def binaries_of(stack, version: str) -> list[dict]:
    with stack.api() as client:
        answer = client.get("/binaries", params={"artifact_version_prn": version})
    return answer.json()["binaries"]


@pytest.fixture(scope="module")
def signed(stack, tmp_path_factory):
    """A signed binary of 9 MiB + 5 bytes, its content, and the key that signed it."""
    folder = tmp_path_factory.mktemp("signed")
    version = stack.new_version()
    path = random_file(folder / "signed.bin", 9 * MiB + 5)
    key_file = openssl_key(folder / "key.pem")
    key = stack.prn_of("signing-keys", "create", "--name", "dl", "--path", str(key_file))
    done = stack.peridio(
        *create_args(
            version, path, "--signing-key-private", str(key_file), "--signing-key-prn", key
        )
    )
    assert done.returncode == 0, done.stderr
    return {"prn": json.loads(done.stdout)["prn"], "content": path.read_bytes(), "key": key}


# --- 1. Downloads ----------------------------------------------------------------------------


def test_it_never_touches_an_existing_file_without_force(stack, signed, tmp_path):
    mine = tmp_path / "mine.bin"
    mine.write_bytes(b"my own notes")
    line = one_error_line(
        stack.peridio("binaries", "download", "--prn", signed["prn"], "--file", str(mine)), 2
    )
    assert f"{mine} already exists" in line and "--force" in line
    assert mine.read_bytes() == b"my own notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.bin"]

    # A .part the CLI did not write is not taken for a download either.
    foreign = tmp_path / "other.bin.part"
    foreign.write_bytes(signed["content"][:MiB])
    line = one_error_line(
        stack.peridio(
            "binaries", "download", "--prn", signed["prn"], "--file", str(tmp_path / "other.bin")
        ),
        2,
    )
    assert "was not written by `peridio binaries download`" in line
    assert foreign.read_bytes() == signed["content"][:MiB]

    forced = stack.peridio(
        "binaries", "download", "--prn", signed["prn"], "--file", str(mine), "--force"
    )
    assert forced.returncode == 0, forced.stderr
    assert mine.read_bytes() == signed["content"]
    assert json.loads(forced.stdout)["resumed_from"] == 0
    assert not (tmp_path / "mine.bin.part").exists()
    assert not (tmp_path / "mine.bin.part.json").exists()


def _kill_mid_download(stack, prn: str, dest: Path) -> None:
    """Start a download through a proxy that sends 6 MiB of the content then stalls; kill the
    CLI once it has saved a checkpoint."""
    with Proxy(stack.url) as proxy:
        proxy.rule = lambda method, path, n: (
            ("stall", 6 * MiB) if method == "GET" and path.startswith("/transfer/") else "forward"
        )
        cli = subprocess.Popen(
            [PERIDIO, "binaries", "download", "--prn", prn, "--file", str(dest)],
            env=stack.cli_env(base_url=proxy.url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        record = Path(str(dest) + ".part.json")
        deadline = time.monotonic() + 60
        while not (record.exists() and json.loads(record.read_text() or "{}").get("checkpoints")):
            assert cli.poll() is None, cli.communicate()
            assert time.monotonic() < deadline, "no checkpoint was saved"
            time.sleep(0.05)
        os.killpg(cli.pid, signal.SIGKILL)
        cli.communicate(timeout=30)


def test_it_resumes_a_killed_download_from_its_own_part_file(stack, signed, tmp_path):
    dest = tmp_path / "fw.bin"
    _kill_mid_download(stack, signed["prn"], dest)
    assert not dest.exists()
    part = Path(str(dest) + ".part")
    assert part.stat().st_size >= 4 * MiB

    resumed = stack.peridio("binaries", "download", "--prn", signed["prn"], "--file", str(dest))
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["resumed_from"] >= 4 * MiB
    assert f"resuming {part} at byte {summary['resumed_from']}" in resumed.stderr
    assert dest.read_bytes() == signed["content"]
    assert not part.exists() and not Path(str(dest) + ".part.json").exists()


def test_it_does_not_resume_a_part_file_with_wrong_bytes(stack, signed, tmp_path):
    dest = tmp_path / "fw.bin"
    _kill_mid_download(stack, signed["prn"], dest)
    part = Path(str(dest) + ".part")
    with open(part, "r+b") as handle:  # damage the bytes the record vouches for
        handle.seek(1000)
        handle.write(b"\0" * 64)
    again = stack.peridio("binaries", "download", "--prn", signed["prn"], "--file", str(dest))
    assert again.returncode == 0, again.stderr
    assert "does not hold the bytes its record says; starting over" in again.stderr
    assert json.loads(again.stdout)["resumed_from"] == 0
    assert dest.read_bytes() == signed["content"]


def test_it_streams_to_stdout(stack, signed):
    done = subprocess.run(
        [PERIDIO, "binaries", "download", "--prn", signed["prn"], "--file", "-"],
        env=stack.cli_env(),
        capture_output=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == signed["content"]


# --- 2. Every check before the first byte ------------------------------------------------------


def test_it_refuses_a_private_key_that_is_not_the_pair_of_the_prn_before_creating_anything(
    stack, tmp_path
):
    ed = openssl_key(tmp_path / "ed.pem")
    rsa = openssl_key(tmp_path / "rsa.pem", "RSA", "-pkeyopt", "rsa_keygen_bits:2048")
    key = stack.prn_of("signing-keys", "create", "--name", "mismatch-ed", "--path", str(ed))
    version = stack.new_version()
    path = random_file(tmp_path / "fw.bin", 6 * MiB)
    puts = stack.upload_puts()
    line = one_error_line(
        stack.peridio(
            *create_args(version, path, "--signing-key-private", str(rsa), "--signing-key-prn", key)
        ),
        2,
    )
    assert f"the private key {rsa} (RSA 2048) is not the pair of signing key {key}" in line
    assert "Nothing was created or uploaded" in line
    assert binaries_of(stack, version) == []
    assert stack.upload_puts() == puts


def test_it_needs_the_password_of_an_encrypted_key_before_creating_anything(stack, tmp_path):
    enc = openssl_key(tmp_path / "enc.pem", "ed25519", "-aes256", "-pass", "pass:s3cret")
    with_password = stack.cli_env(PERIDIO_SIGNING_KEY_PASSWORD="s3cret")
    made = stack.peridio(
        "signing-keys",
        "create",
        "--name",
        "enc",
        "--path",
        str(enc),
        "-o",
        "prn",
        env=with_password,
    )
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    version = stack.new_version()
    path = random_file(tmp_path / "fw.bin", 6 * MiB)
    args = create_args(version, path, "--signing-key-private", str(enc), "--signing-key-prn", key)
    line = one_error_line(stack.peridio(*args), 2)
    assert f"the private key {enc} is encrypted: set PERIDIO_SIGNING_KEY_PASSWORD" in line
    assert binaries_of(stack, version) == []

    wrong = stack.cli_env(PERIDIO_SIGNING_KEY_PASSWORD="nope")
    line = one_error_line(stack.peridio(*args, env=wrong), 2)
    assert f"cannot decrypt the private key {enc}: wrong password" in line
    assert binaries_of(stack, version) == []

    done = stack.peridio(*args, env=with_password)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "signed"


def test_it_names_a_file_changed_during_the_upload(stack, tmp_path):
    version = stack.new_version()
    path = random_file(tmp_path / "edited.bin", 3 * 5 * MiB)

    def touch_on_first_part(method: str, path_: str, n: int) -> str:
        if path_.startswith("/transfer/parts/") and n == 0:
            stat = path.stat()
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
        return "forward"

    with Proxy(stack.url) as proxy:
        proxy.rule = touch_on_first_part
        done = stack.peridio(
            *create_args(version, path, "--binary-part-size", "5MiB"),
            env=stack.cli_env(base_url=proxy.url),
        )
    line = one_error_line(done, 1)
    assert line.startswith(f"peridio: {path} changed while it was being uploaded")
    assert [b["state"] for b in binaries_of(stack, version)] == ["uploadable"]


# --- 5. Scripting ------------------------------------------------------------------------------


def test_it_takes_global_short_flags_after_the_command(stack):
    bare = {
        k: v for k, v in stack.cli_env().items() if k not in ("PERIDIO_API_KEY", "PERIDIO_BASE_URL")
    }
    done = stack.peridio(
        "artifacts", "list", "-a", stack.api_key, "-b", stack.url, "-o", "json", env=bare
    )
    assert done.returncode == 0, done.stderr
    assert "artifacts" in json.loads(done.stdout)
    # -b means the base URL everywhere, binary-signatures create included.
    line = one_error_line(
        stack.peridio("binary-signatures", "create", "--binary-prn", "prn:1:x", "-b",
                      "http://127.0.0.1:9", "--signing-key-prn", "prn:1:y", "--signature", "AA=="),
        4,
    )  # fmt: skip
    assert "cannot reach http://127.0.0.1:9" in line
    made = stack.peridio("config", "profiles", "create", "--name", "after", "--api-key",
                         stack.api_key, "--base-url", stack.url, env=bare)  # fmt: skip
    assert made.returncode == 0, made.stderr
    done = stack.peridio("artifacts", "list", "-p", "after", "-o", "prn", env=bare)
    assert done.returncode == 0, done.stderr


def test_it_lists_everything_with_all_and_says_when_a_page_is_not_the_last(stack):
    with stack.api() as client:
        for n in range(250):
            made = client.post(
                "/artifacts", json={"name": f"bulk-{n:03d}", "description": "x" * 200}
            )
            assert made.status_code in (200, 201), made.text
        total, page = [], None
        while True:
            answer = client.get(
                "/artifacts", params={"limit": 100, **({"page": page} if page else {})}
            ).json()
            total += [a["prn"] for a in answer["artifacts"]]
            page = answer.get("next_page")
            if not page:
                break
    assert len(total) >= 250

    first = stack.peridio("artifacts", "list", "-o", "prn")
    assert first.returncode == 0, first.stderr
    assert len(first.stdout.split()) < len(total)
    assert "there are more: add --all for every page" in first.stderr

    every = stack.peridio("artifacts", "list", "--all", "-o", "prn")
    assert every.returncode == 0, every.stderr
    assert every.stdout.split() == total
    assert every.stderr == ""

    # More than a pipe holds, read by `head -1`: peridio meets a closed pipe, quietly.
    piped = stack.bash("set -o pipefail; peridio artifacts list --all -o json | head -1", Path("."))
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == "{\n" and piped.stderr == ""


# --- 6. Networks -------------------------------------------------------------------------------


def test_it_gives_up_on_a_server_that_never_answers_within_the_timeout(stack):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # connections are accepted by the kernel, and never answered
    url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    try:
        for args, extra in ((["--timeout", "2"], {}), ([], {"PERIDIO_TIMEOUT": "2"})):
            began = time.monotonic()
            done = stack.peridio(
                "artifacts", "list", *args, env=stack.cli_env(base_url=url, **extra)
            )
            took = time.monotonic() - began
            assert done.returncode == 4, done.stderr
            last = done.stderr.strip().splitlines()[-1]
            assert "no answer within 2 s, the time-out (--timeout, PERIDIO_TIMEOUT)" in last
            assert 2 <= took < 6, took
    finally:
        silent.close()


def test_it_reduces_an_html_error_page_to_its_status_and_a_hint(stack):
    line = one_error_line(stack.peridio("artifacts", "list", "-b", stack.url + "/api"), 3)
    assert "HTTP 404" in line and "answered an HTML page" in line
    assert "Check --base-url" in line and "/v1" in line
    assert "<" not in line


def test_it_completes_an_upload_through_a_network_drop_of_4_seconds(stack, tmp_path):
    version = stack.new_version()
    path = random_file(tmp_path / "drop.bin", 6 * 5 * MiB)
    window: list[float] = []
    dropped: list[str] = []

    def drop_for_4_seconds(method: str, path_: str, n: int) -> str:
        if not window and path_.startswith("/transfer/parts/") and n == 1:
            window.append(time.monotonic())
        if window and time.monotonic() < window[0] + 4:
            dropped.append(f"{method} {path_}")
            return "drop"
        return "forward"

    with Proxy(stack.url) as proxy:
        proxy.rule = drop_for_4_seconds
        done = stack.peridio(
            *create_args(version, path, "--binary-part-size", "5MiB", "--concurrency", "2"),
            env=stack.cli_env(base_url=proxy.url),
        )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "signable"
    assert any(d.startswith("PUT /transfer/parts/") for d in dropped)
    assert any(not d.startswith("PUT /transfer/") for d in dropped), dropped


# --- 7. Destroy --------------------------------------------------------------------------------


def test_it_refuses_to_destroy_without_yes_when_there_is_no_terminal(stack):
    version = stack.new_version()
    prn = stack.prn_of("binaries", "create", "--artifact-version-prn", version, "--target",
                       "universal", "--hash", "ab" * 32, "--size", "3")  # fmt: skip
    line = one_error_line(stack.peridio("binaries", "destroy", "--binary-prn", prn), 2)
    assert "not a terminal, so nobody can confirm" in line and "--yes" in line
    assert stack.binary(prn)["state"] == "uploadable"


# --- 3. Help -----------------------------------------------------------------------------------


def test_it_prints_readable_help_for_a_bare_command():
    for args in ([], ["binaries"], ["config"], ["config", "signing-key-pairs"]):
        done = subprocess.run(
            [PERIDIO, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(
            f"Usage: peridio {' '.join(args)}".rstrip() + " [OPTIONS] COMMAND"
        )
        assert "\nCommands:\n" in done.stdout and done.stderr == ""
    root = subprocess.run([PERIDIO], capture_output=True, text=True).stdout
    for name in ("PERIDIO_OUTPUT", "PERIDIO_SIGNING_KEY_PASSWORD", "PERIDIO_TIMEOUT"):
        assert name in root


def _leaves():
    import click

    from peridio_cli.main import cli

    def walk(group, path):
        for name, command in sorted(group.commands.items()):
            if isinstance(command, click.Group):
                yield from walk(command, [*path, name])
            else:
                yield [*path, name], command

    return list(walk(cli, []))


def test_every_command_has_a_description_an_example_and_help_for_each_option():
    for path, command in _leaves():
        assert command.help and command.get_short_help_str(), path
        done = subprocess.run([PERIDIO, *path, "--help"], capture_output=True, text=True)
        assert done.returncode == 0, (path, done.stderr)
        assert "Example" in done.stdout, path
        for param in command.params:
            if param.param_type_name == "option" and not getattr(param, "hidden", False):
                assert param.help, (path, param.name)


# --- 4. Progress -------------------------------------------------------------------------------


def _slow_parts(seconds: float):
    def rule(method: str, path: str, n: int) -> str:
        if path.startswith("/transfer/parts/"):
            time.sleep(seconds)
        return "forward"

    return rule


def test_progress_fits_a_60_column_terminal_with_an_eta(stack, tmp_path):
    version = stack.new_version()
    path = random_file(tmp_path / "tty.bin", 8 * 5 * MiB)
    with Proxy(stack.url) as proxy:
        proxy.rule = _slow_parts(0.4)
        args = create_args(version, path, "--binary-part-size", "5MiB", "--concurrency", "1")
        code, text = in_terminal([PERIDIO, *args], stack.cli_env(base_url=proxy.url, TERM="xterm"))
    assert code == 0, text
    lines = text.replace("\r\n", "\n").split("\n")
    bars = [
        line for line in lines if line.lstrip("\r\x1b[2K").startswith(("uploading", "verifying"))
    ]
    assert bars, text
    for line in bars:  # stdout's JSON is on the terminal too, as long as it is
        for shown in line.split("\r"):
            assert len(shown.replace("\x1b[2K", "")) <= 59, repr(shown)
    assert len([line for line in lines if "uploading" in line]) == 1, lines
    assert "ETA " in text and "MiB/s" in text


def test_progress_without_a_terminal_is_a_plain_line_every_few_seconds(stack, tmp_path):
    version = stack.new_version()
    path = random_file(tmp_path / "ci.bin", 8 * 5 * MiB)
    with Proxy(stack.url) as proxy:
        proxy.rule = _slow_parts(0.8)
        done = stack.peridio(
            *create_args(version, path, "--binary-part-size", "5MiB", "--concurrency", "1"),
            env=stack.cli_env(base_url=proxy.url),
        )
    assert done.returncode == 0, done.stderr
    plain = [line for line in done.stderr.splitlines() if line.startswith("peridio: uploading ")]
    assert len(plain) >= 2, done.stderr  # at least one on the way and the last
    assert "\r" not in done.stderr and "\x1b" not in done.stderr
    assert plain[-1].startswith("peridio: uploading 100% 40.0 MiB/40.0 MiB")


# --- 7. Completion and signing key pairs ---------------------------------------------------------


def test_it_prints_completion_scripts_that_complete_commands(tmp_path):
    for shell in ("bash", "zsh", "fish"):
        done = subprocess.run([PERIDIO, "completion", shell], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert "_PERIDIO_COMPLETE" in done.stdout
    # What the bash script asks the entry point for, answered by the entry point.
    env = {**os.environ, "_PERIDIO_COMPLETE": "bash_complete", "COMP_WORDS": "peridio bin",
           "COMP_CWORD": "1"}  # fmt: skip
    answer = subprocess.run([PERIDIO], env=env, capture_output=True, text=True)
    assert answer.returncode == 0 and "binaries" in answer.stdout, answer


def test_it_adds_a_signing_key_pair_to_the_config_file(tmp_path):
    key = openssl_key(tmp_path / "release.pem")
    env = {"PATH": os.environ["PATH"], "PERIDIO_CONFIG_DIR": str(tmp_path / "config")}
    args = ["config", "signing-key-pairs", "create", "--name", "release", "--signing-key-prn",
            "prn:1:org:signing_key:k", "--signing-key-private-path", str(key)]  # fmt: skip
    made = subprocess.run([PERIDIO, *args], env=env, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    saved = json.loads((tmp_path / "config" / "config.json").read_text())
    assert saved["signing_key_pairs"]["release"] == {
        "signing_key_prn": "prn:1:org:signing_key:k",
        "signing_key_private_path": str(key),
    }
    assert oct((tmp_path / "config" / "config.json").stat().st_mode & 0o777) == "0o600"


def test_it_discards_an_abandoned_upload_with_a_reason(stack, tmp_path):
    version = stack.new_version()
    part = random_file(tmp_path / "part_aa", 5 * MiB)
    prn = stack.prn_of("binaries", "create", "--artifact-version-prn", version, "--target",
                       "universal", "--hash", "cd" * 32, "--size", str(12 * MiB))  # fmt: skip
    sent = stack.peridio("binary-parts", "create", "--binary-prn", prn, "--part-number", "1",
                         "--file", str(part))  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    done = stack.peridio(
        "binaries", "destroy", "--binary-prn", prn, "--reason", "abandoned build", "--yes"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "destroyed"
    with stack.api() as client:
        trail = client.get("/audit_events", params={"object": prn}).text
    assert "abandoned build" in trail


def test_tables_fit_the_terminal_with_human_sizes_and_summarised_signatures(stack, signed):
    env = stack.cli_env(TERM="xterm")
    code, text = in_terminal([PERIDIO, "binaries", "list", "--all"], env, columns=60)
    assert code == 0, text
    rows = [line for line in text.replace("\r\n", "\n").split("\n") if line.strip()]
    assert rows[0].startswith("PRN") and len(rows) > 1, text
    assert all(len(row) <= 60 for row in rows), rows
    assert "9.0 MiB" in text and "…" in text
    code, wide = in_terminal([PERIDIO, "binaries", "list", "--all", "--wide"], env, columns=60)
    assert code == 0 and signed["prn"] in wide, wide

    code, text = in_terminal(
        [PERIDIO, "binaries", "get", "--binary-prn", signed["prn"], "-o", "table"], env, columns=200
    )
    assert code == 0, text
    line = next(row for row in text.splitlines() if row.startswith("signatures"))
    assert "1 valid (" in line and "{" not in line, line
