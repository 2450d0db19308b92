"""The `peridio` upload engine against a live server and a real Celery worker: resuming an
upload killed half-way, retrying a part the server failed, bounded memory, S3, and the exit
code and one-line message of every failure."""

import json
import os
import signal
import subprocess
import threading
import time

import psutil
import pytest

from tests.cli_helpers import (
    PERIDIO,
    MiB,
    Proxy,
    create_args,
    one_error_line,
    random_file,
    running_stack,
    sha256_file,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with running_stack(tmp_path_factory.mktemp("cli-transfer")) as running:
        yield running


# --- Resume and retry -----------------------------------------------------------------------


def test_it_resumes_an_upload_killed_half_way_sending_only_the_missing_parts(stack, tmp_path):
    version = stack.new_version()
    path = random_file(tmp_path / "big.bin", 10 * 5 * MiB + 321)  # 11 parts of 5 MiB
    args = create_args(version, path, "--binary-part-size", "5MiB", "--concurrency", "2")
    with Proxy(stack.url) as proxy:
        # The first three part uploads go through; the next ones hang until the CLI dies.
        proxy.rule = lambda method, path_, n: (
            "hold" if path_.startswith("/transfer/parts/") and n >= 3 else "forward"
        )
        env = stack.cli_env(base_url=proxy.url)
        cli = subprocess.Popen(
            [PERIDIO, *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while not (proxy.uploads_forwarded() == 3 and proxy.held >= 1):
            assert cli.poll() is None, cli.communicate()
            assert time.monotonic() < deadline, "the CLI never reached its fourth part"
            time.sleep(0.05)
        os.killpg(cli.pid, signal.SIGKILL)
        cli.communicate(timeout=30)
        proxy.gate.set()

        binaries = json.loads(
            stack.peridio(
                "binaries", "list", "--artifact-version-prn", version, "-o", "json"
            ).stdout
        )["binaries"]
        assert [b["state"] for b in binaries] == ["uploadable"]
        parts = json.loads(
            stack.peridio(
                "binary-parts", "list", "--binary-prn", binaries[0]["prn"], "-o", "json"
            ).stdout
        )
        assert sum(p["state"] == "valid" for p in parts["binary_parts"]) == 3

        proxy.rule = lambda method, path_, n: "forward"
        before = proxy.uploads_forwarded()
        done = stack.peridio(*args, env=env)
    assert done.returncode == 0, done.stderr
    binary = json.loads(done.stdout)
    assert binary["prn"] == binaries[0]["prn"]  # the same binary, resumed
    assert binary["state"] == "signable"
    assert binary["hash"] == f"sha256:{sha256_file(path)}"
    assert proxy.uploads_forwarded() - before == 11 - 3  # only the missing parts
    assert "3 of 11 part(s) already uploaded; sending the other 8." in done.stderr


def test_it_retries_a_part_the_server_failed_once(stack, tmp_path):
    version = stack.new_version()
    path = random_file(tmp_path / "flaky.bin", 4 * 5 * MiB)
    failures = {0: 503, 2: "drop"}  # the first upload answered 503, the third cut off
    with Proxy(stack.url) as proxy:
        proxy.rule = lambda method, path_, n: (
            failures.get(n, "forward") if path_.startswith("/transfer/parts/") else "forward"
        )
        done = stack.peridio(
            *create_args(version, path, "--binary-part-size", "5MiB", "--concurrency", "1"),
            env=stack.cli_env(base_url=proxy.url),
        )
        forwarded = proxy.uploads_forwarded()
        attempts = proxy.counts[("PUT", "upload")]
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "signable"
    assert (forwarded, attempts) == (4, 6)
    assert done.stderr.count("retrying in") == 2
    assert "HTTP 503" in done.stderr and "network error" in done.stderr


def test_it_gives_up_on_a_part_after_its_retries_and_says_how_to_resume(stack, tmp_path):
    version = stack.new_version()
    path = random_file(tmp_path / "down.bin", 6 * MiB)
    with Proxy(stack.url) as proxy:
        proxy.rule = lambda method, path_, n: 502 if path_.startswith("/transfer/") else "forward"
        done = stack.peridio(
            *create_args(version, path, "--retries", "1"), env=stack.cli_env(base_url=proxy.url)
        )
    assert done.returncode == 4, done.stderr
    lines = [
        line
        for line in done.stderr.splitlines()
        if "retrying in" not in line and not line.startswith("peridio: uploading ")
    ]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    line = lines[0]
    assert line.startswith("peridio: part 1 of prn:")
    assert "failed 2 times (last: HTTP 502" in line
    assert line.endswith("Rerun the same command to resume: parts already uploaded are kept.")


# --- Memory -----------------------------------------------------------------------------------


def test_it_keeps_its_memory_bounded_whatever_the_file_size(stack, tmp_path):
    version = stack.new_version()
    path = random_file(tmp_path / "large.bin", 320 * MiB)
    cli = psutil.Popen(
        [PERIDIO, *create_args(version, path, "--binary-part-size", "16MiB", "--concurrency", "8")],
        env=stack.cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    peak = 0
    sampler_done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not sampler_done.is_set():
            try:
                peak = max(peak, cli.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = cli.communicate(timeout=300)
    sampler_done.set()
    sampler.join()
    assert cli.returncode == 0, err
    assert json.loads(out)["state"] == "signable"
    assert 0 < peak <= 100 * 10**6, f"peak RSS {peak / 1e6:.0f} MB"


# --- Exit codes and messages ------------------------------------------------------------------


def test_it_exits_3_with_one_line_on_a_bad_api_key(stack):
    done = stack.peridio("binaries", "list", env=stack.cli_env(PERIDIO_API_KEY="pdo_bad_key"))
    line = one_error_line(done, 3)
    assert line.startswith("peridio: listing binaries was refused (HTTP 401 unauthorized): ")
    assert line.endswith("Check --api-key or PERIDIO_API_KEY.")


def test_it_exits_4_with_one_line_when_the_server_is_unreachable(stack):
    with __import__("socket").socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connection refused
        done = stack.peridio(
            "artifacts", "list", env=stack.cli_env(base_url=f"http://127.0.0.1:{port}")
        )
    line = one_error_line(done, 4)
    assert line.startswith(
        f"peridio: listing artifacts failed: cannot reach http://127.0.0.1:{port}"
    )
    assert "Check --base-url or PERIDIO_BASE_URL" in line


def test_it_exits_4_with_one_line_on_a_server_error(stack):
    with Proxy(stack.url) as proxy:
        proxy.rule = lambda method, path_, n: 500 if method == "POST" else "forward"
        done = stack.peridio(
            "artifacts", "create", "--name", "x", env=stack.cli_env(base_url=proxy.url)
        )
    line = one_error_line(done, 4)
    assert line.startswith("peridio: creating artifact 'x' failed on the server (HTTP 500")


def test_it_exits_3_with_the_servers_words_on_a_refusal(stack):
    version = stack.new_version()
    args = (
        "binaries",
        "create",
        "--artifact-version-prn",
        version,
        "--target",
        "universal",
        "--hash",
        "ab" * 32,
        "--size",
        "10",
    )
    assert stack.peridio(*args).returncode == 0
    line = one_error_line(stack.peridio(*args), 3)
    assert line.startswith("peridio: creating the binary was refused (HTTP 409 target_taken): ")


def test_it_exits_2_with_one_line_on_a_missing_or_empty_flag(stack):
    line = one_error_line(stack.peridio("binaries", "get"), 2)
    assert line == (
        "peridio binaries get: Missing option '--binary-prn' / '--prn'. "
        "(see `peridio binaries get --help`)"
    )
    line = one_error_line(stack.peridio("binaries", "get", "--prn", "--output", "json"), 2)
    assert "Invalid value for '--binary-prn' / '--prn': got an empty value" in line
    line = one_error_line(stack.peridio("binaries", "list", "--state", "nope"), 2)
    assert "Invalid value for '--state'" in line
    no_key = {k: v for k, v in stack.cli_env().items() if k != "PERIDIO_API_KEY"}
    line = one_error_line(stack.peridio("binaries", "list", env=no_key), 2)
    assert line.startswith("peridio: no API key: pass --api-key, set PERIDIO_API_KEY")


def test_it_exits_2_when_binary_prn_is_empty_and_no_binary_declares_the_file(stack, tmp_path):
    path = random_file(tmp_path / "orphan.bin", 1000)
    done = stack.peridio("binaries", "upload", "--binary-prn", "--file", str(path))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2
    assert lines[-1].startswith("peridio: --binary-prn is empty and no binary declares it; ")
    assert "BINARY_PRN=$(peridio binaries create ... --output prn)" in lines[-1]


def test_it_refuses_a_file_that_does_not_match_the_declared_hash(stack, tmp_path):
    version = stack.new_version()
    path = random_file(tmp_path / "wrong.bin", 2000)
    prn = stack.prn_of(
        "binaries",
        "create",
        "--artifact-version-prn",
        version,
        "--target",
        "universal",
        "--hash",
        "cd" * 32,
        "--size",
        "2000",
    )
    line = one_error_line(
        stack.peridio("binaries", "upload", "--binary-prn", prn, "--file", str(path)), 1
    )
    assert f"not the declared {'cd' * 32}" in line
    assert f"peridio binaries update --prn {prn} --hash sha256:" in line


def test_it_times_out_waiting_and_says_how_to_resume(stack, tmp_path):
    version = stack.new_version()
    path = random_file(tmp_path / "slow.bin", 3 * MiB)
    done = stack.peridio(*create_args(version, path, "--wait-timeout", "0"))
    assert done.returncode == 1, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("peridio: timed out after 0 s waiting for prn:")
    assert "rerun the command to wait again" in line
    rerun = stack.peridio(*create_args(version, path))
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["state"] == "signable"


def test_it_uses_named_profiles(stack):
    env = {k: v for k, v in stack.cli_env().items() if not k.startswith("PERIDIO_API")}
    env.pop("PERIDIO_BASE_URL")
    made = stack.peridio(
        "config",
        "profiles",
        "create",
        "--name",
        "ci",
        "--api-key",
        stack.api_key,
        "--base-url",
        stack.url,
        env=env,
    )
    assert made.returncode == 0, made.stderr
    listed = stack.peridio("--profile", "ci", "artifacts", "list", "-o", "json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "artifacts" in json.loads(listed.stdout)
    after = stack.peridio("artifacts", "list", "--profile", "ci", "-o", "prn", env=env)
    assert after.returncode == 0, after.stderr
    line = one_error_line(stack.peridio("-p", "nope", "artifacts", "list", env=env), 2)
    assert line.startswith("peridio: no profile 'nope' in ")
    shown = json.loads(stack.peridio("config", "profiles", "list", env=env).stdout)
    assert shown["ci"]["api_key"] == "…" + stack.api_key[-4:]


# --- S3 ---------------------------------------------------------------------------------------


def test_it_uploads_to_s3_with_checksummed_presigned_urls(s3_server, tmp_path):
    storage = {
        "STORAGE_BACKEND": "s3",
        "AWS_STORAGE_BUCKET_NAME": "peridio-test",
        "AWS_S3_ENDPOINT_URL": s3_server["endpoint"],
        "AWS_S3_REGION_NAME": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_S3_ADDRESSING_STYLE": "path",
    }
    with running_stack(tmp_path / "s3-stack", storage) as s3_stack:
        version = s3_stack.new_version()
        path = random_file(tmp_path / "s3.bin", 3 * 5 * MiB + 77)
        args = create_args(version, path, "--binary-part-size", "5MiB")
        done = s3_stack.peridio(*args)
        assert done.returncode == 0, done.stderr + s3_stack.output()
        binary = json.loads(done.stdout)
        assert binary["state"] == "signable"
        assert binary["hash"] == f"sha256:{sha256_file(path)}"
        rerun = s3_stack.peridio(*args)
        assert rerun.returncode == 0 and "nothing to upload" in rerun.stderr


# --- Downloads --------------------------------------------------------------------------------


def test_it_downloads_only_signed_binaries(stack, tmp_path):
    """Resuming, --force and stdout: tests/test_cli_everyday.py."""
    version = stack.new_version()
    unsigned = stack.prn_of("binaries", "create", "--artifact-version-prn", version, "--target",
                            "other", "--hash", "ab" * 32, "--size", "3")  # fmt: skip
    line = one_error_line(stack.peridio("binaries", "download", "--prn", unsigned, "--file",
                                        str(tmp_path / "no.bin")), 3)  # fmt: skip
    assert "only signed binaries can be downloaded" in line
