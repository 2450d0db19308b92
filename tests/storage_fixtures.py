"""Both storage backends for tests: the filesystem under a temporary folder, and a real S3
endpoint (moto's server over HTTP on a free loopback port)."""

import socket

import boto3
import pytest
from botocore.config import Config

from binaries import storage

BUCKET = "peridio-test"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )
    client.create_bucket(Bucket=BUCKET)
    yield {"endpoint": endpoint, "client": client}
    server.stop()


def s3_settings(endpoint: str) -> dict:
    return {
        "STORAGE_BACKEND": "s3",
        "STORAGES": {
            "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
            "binaries": {
                "BACKEND": "storages.backends.s3.S3Storage",
                "OPTIONS": {
                    "bucket_name": BUCKET,
                    "endpoint_url": endpoint,
                    "region_name": "us-east-1",
                    "access_key": "testing",
                    "secret_key": "testing",
                    "addressing_style": "path",
                    "signature_version": "s3v4",
                    "file_overwrite": True,
                    "default_acl": None,
                },
            },
        },
    }


def _empty_bucket(client) -> None:
    for upload in client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []):
        client.abort_multipart_upload(Bucket=BUCKET, Key=upload["Key"], UploadId=upload["UploadId"])
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])


@pytest.fixture(params=["filesystem", "s3"])
def backend(request, settings, binaries_root):
    """The configured storage backend; tests using it run once on each. The filesystem one is
    the test's own folder (conftest's autouse `binaries_root`)."""
    if request.param == "s3":
        server = request.getfixturevalue("s3_server")
        _empty_bucket(server["client"])
        for name, value in s3_settings(server["endpoint"]).items():
            setattr(settings, name, value)
    chosen = storage.get()
    yield chosen
    if request.param == "s3":
        _empty_bucket(request.getfixturevalue("s3_server")["client"])
