"""`peridio` marking a binary hashable: the request waits as long as the server may work on
completing a large upload, and an answer lost after the server acted is not a failure."""

import pytest

from binaries.storage.s3 import COMPLETE_READ_TIMEOUT
from peridio_cli.api import COMPLETE_SECONDS, DEFAULT_TIMEOUT
from peridio_cli.errors import Unavailable
from peridio_cli.transfer import waiting

PRN = "prn:1:org:binary:b"


class FakeApi:
    """The PATCH times out (the answer is lost); the binary is then in `state`."""

    def __init__(self, state: str):
        self.state = state
        self.calls: list[tuple[str, dict]] = []

    def call(self, method: str, path: str, **kwargs):
        self.calls.append((method, kwargs))
        raise Unavailable("completing the upload failed: cannot reach the server (timed out).")

    def get_binary(self, prn: str) -> dict:
        return {"prn": prn, "state": self.state}


def test_it_waits_longer_for_the_completion_than_the_server_gives_the_store():
    assert COMPLETE_SECONDS > COMPLETE_READ_TIMEOUT > DEFAULT_TIMEOUT
    api = FakeApi("hashable")

    waiting.mark_hashable(api, PRN)

    ((method, kwargs),) = api.calls
    assert method == "PATCH" and kwargs["at_least"] == COMPLETE_SECONDS


@pytest.mark.parametrize("state", ["hashable", "hashing", "signable"])
def test_it_carries_on_when_the_answer_was_lost_but_the_server_completed(state):
    assert waiting.mark_hashable(FakeApi(state), PRN)["state"] == state


def test_it_fails_when_the_answer_was_lost_and_the_upload_is_not_complete():
    with pytest.raises(Unavailable, match="timed out"):
        waiting.mark_hashable(FakeApi("uploadable"), PRN)
