"""The README's shell lines, run as printed in a clean checkout: the set-up (`make run`, started
as a reader would and stopped with Ctrl-C), "Organizations, users and API keys" and "Command
line", each block by bash with `set -euo pipefail`, so every line must exit 0 and no variable
may be used unset.

The checkout is the working tree's files as a clone has them (`git ls-files`: tracked and new,
nothing ignored, so no var/ and no .venv) in a temporary folder, with an environment that holds
no setting at all. What the test sets around the README's lines, and why:
- .venv is this suite's virtualenv, linked in and marked installed, so `make run` installs
  nothing (the Makefile's install step is the only line not exercised);
- PORT is a free port rather than 8000, and the CLI block's 127.0.0.1:8000 says so too;
- .venv/bin is on PATH, as the README's Command line section asks;
- the files the CLI example says the reader brings: firmware.bin, release.pem and firmware.sig
  (made by the README's own openssl line).
`make test` is not run: it is this suite.
"""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.server_helpers import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
SETUP, ORGANIZATIONS, COMMAND_LINE = "", "Organizations, users and API keys", "Command line"
SERVER_LINE = "make run"
NOT_RUN = {"make test": "runs this whole suite, this test included"}


def sections(text: str) -> dict[str, str]:
    """Each `## ` section's text by its title; the set-up is what comes before the first."""
    found: dict[str, str] = {}
    title = SETUP
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith("## "):
            found[title] = "\n".join(lines)
            title, lines = line[3:].strip(), []
        else:
            lines.append(line)
    found[title] = "\n".join(lines)
    return found


def shell_blocks(section: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", section, re.MULTILINE | re.DOTALL)


def command(line: str) -> str:
    return line.split("#", 1)[0].strip()


def clean_checkout(folder: Path) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is not there
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, folder / name)
    venv = folder / ".venv"
    venv.mkdir()
    for entry in Path(sys.prefix).iterdir():
        if entry.name != ".installed":
            (venv / entry.name).symlink_to(entry)
    (venv / ".installed").touch()  # newer than the copied pyproject.toml: nothing to install
    return folder


def bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    strict = "set -euo pipefail\ntrap 'echo \"README line failed: $BASH_COMMAND\" >&2' ERR\n"
    return subprocess.run(
        ["bash", "-c", strict + script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def ok(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    return done


def stop(server: subprocess.Popen, checkout: Path) -> None:
    """Ctrl-C, as the README says; then whatever this checkout started and left, by pid."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGINT)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
    for process in psutil.process_iter(["pid", "cwd"]):
        if (process.info["cwd"] or "").startswith(str(checkout)):
            with contextlib.suppress(psutil.Error):
                process.kill()


def test_the_readme_sections_hold_the_lines_this_test_runs():
    found = sections(README)

    setup_lines = [command(line) for line in shell_blocks(found[SETUP])[0].splitlines()]
    assert setup_lines == [SERVER_LINE, *NOT_RUN]
    assert len(shell_blocks(found[ORGANIZATIONS])) == 1
    assert len(shell_blocks(found[COMMAND_LINE])) == 1
    assert "http://127.0.0.1:8000" in shell_blocks(found[COMMAND_LINE])[0]


def test_every_readme_line_works_as_printed_in_a_clean_checkout(tmp_path):
    if not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to list its files")
    found = sections(README)
    checkout = clean_checkout(tmp_path / "checkout")
    port = free_port()
    env = {
        "PATH": f"{checkout / '.venv' / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "LANG": "C.UTF-8",
        "PORT": str(port),
    }
    log = tmp_path / "make-run.log"
    with open(log, "wb") as output:
        server = subprocess.Popen(
            ["bash", "-c", shell_blocks(found[SETUP])[0].splitlines()[0]],
            cwd=checkout,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, log.read_text()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200:
                    break
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        assert f"Peridio Console: http://127.0.0.1:{port}/" in log.read_text()

        ok(bash(shell_blocks(found[ORGANIZATIONS])[0], checkout, env))

        sign = re.search(r"`(openssl dgst[^`]*)`", " ".join(found[COMMAND_LINE].split()))
        assert sign is not None
        (checkout / "firmware.bin").write_bytes(os.urandom(3 << 20))
        ok(
            bash(
                "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out release.pem\n"
                + sign.group(1),
                checkout,
                env,
            )
        )
        cli = shell_blocks(found[COMMAND_LINE])[0].replace(
            "http://127.0.0.1:8000", f"http://127.0.0.1:{port}"
        )
        done = ok(bash(cli, checkout, env))

        assert (checkout / "copy.bin").read_bytes() == (checkout / "firmware.bin").read_bytes()
        assert re.search(r'"state": ?"signed"', done.stdout), done.stdout
    finally:
        stop(server, checkout)

    with pytest.raises(httpx.TransportError):  # Ctrl-C stopped the web server
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    assert oct((checkout / "var" / "env").stat().st_mode & 0o777) == "0o600"
