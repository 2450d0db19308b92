"""Log-in throttling: every form that takes a password, one count per person however their
name is spelled, the client's own address behind a trusted proxy, no count lost in a race."""

import threading

import pytest
from django.test import Client

from tests.factories import UserFactory

PASSWORD = "correct horse battery"  # the factories' and the staff_user fixture's
THROTTLED = b"Too many failed log-ins. Wait 15 minutes, then try again."
# carol in full-width letters and in mathematical bold: NFKC makes both plain "carol".
FULLWIDTH_CAROL = "\uff43\uff41\uff52\uff4f\uff4c"
BOLD_CAROL = "\U0001d41c\U0001d41a\U0001d42b\U0001d428\U0001d425"


def log_in(client: Client, username: str, password: str, *, path: str = "/login/", **meta):
    return client.post(path, {"username": username, "password": password}, **meta)


def test_it_throttles_the_admin_login(client, staff_user):
    for _ in range(25):
        log_in(client, "support", "wrong", path="/admin/login/")

    response = log_in(client, "support", PASSWORD, path="/admin/login/")

    assert response.status_code == 429
    assert THROTTLED in response.content
    assert "_auth_user_id" not in client.session


def test_it_counts_failures_at_the_admin_login_and_the_console_login_together(
    client, staff_user, settings
):
    settings.LOGIN_FAILURE_LIMIT = 4
    for path in ("/admin/login/", "/login/", "/admin/login/", "/login/"):
        assert log_in(client, "support", "wrong", path=path).status_code == 200

    assert log_in(client, "support", PASSWORD).status_code == 429
    assert log_in(client, "support", PASSWORD, path="/admin/login/").status_code == 429


@pytest.mark.parametrize("look_alike", [FULLWIDTH_CAROL, BOLD_CAROL, "CAROL", " Carol "])
def test_it_throttles_look_alikes_of_a_username_with_it(client, db, settings, look_alike):
    settings.LOGIN_FAILURE_LIMIT = 3
    UserFactory(username="carol")
    for _ in range(3):
        log_in(client, "carol", "wrong")
    assert log_in(client, "carol", PASSWORD).status_code == 429

    response = log_in(client, look_alike, PASSWORD)

    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_it_adds_up_failures_under_every_spelling(client, db, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    UserFactory(username="carol")
    for spelling in (FULLWIDTH_CAROL, BOLD_CAROL, "Carol"):
        assert log_in(client, spelling, "wrong").status_code == 200

    assert log_in(client, "carol", PASSWORD).status_code == 429


def test_it_still_lets_look_alikes_log_in_below_the_limit(client, db):
    # Authentication reads the NFKC form: the full-width spelling is carol's own name.
    UserFactory(username="carol")
    assert log_in(client, FULLWIDTH_CAROL, PASSWORD).status_code == 302


PROXY = "10.0.0.2"
ATTACKER = "203.0.113.7"
NEIGHBOUR = "198.51.100.9"


def test_it_limits_the_forwarded_client_behind_a_trusted_proxy(client, db, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.LOGIN_FAILURE_LIMIT = 2
    UserFactory(username="erin")
    # The attacker forges a left-hand entry; the proxy appends the address it saw.
    attacker = {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": f"192.0.2.1, {ATTACKER}"}
    for n in range(8):  # 4 x the limit, each a different username
        assert log_in(client, f"guess{n}", "wrong", **attacker).status_code == 200

    assert log_in(client, "fresh", "wrong", **attacker).status_code == 429
    neighbour = {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": NEIGHBOUR}
    assert log_in(Client(), "erin", PASSWORD, **neighbour).status_code == 302


def test_it_ignores_a_forged_forwarded_for_without_a_trusted_proxy(client, db, settings):
    assert settings.TRUSTED_PROXY_COUNT == 0
    settings.LOGIN_FAILURE_LIMIT = 2
    for n in range(8):
        forged = {"REMOTE_ADDR": ATTACKER, "HTTP_X_FORWARDED_FOR": f"192.0.2.{n}"}
        assert log_in(client, f"guess{n}", "wrong", **forged).status_code == 200

    forged = {"REMOTE_ADDR": ATTACKER, "HTTP_X_FORWARDED_FOR": NEIGHBOUR}
    assert log_in(client, "fresh", "wrong", **forged).status_code == 429


@pytest.mark.parametrize(
    ("count", "remote", "forwarded", "expected"),
    [
        (0, "10.0.0.2", "203.0.113.7", "10.0.0.2"),
        (1, "10.0.0.2", "192.0.2.1, 203.0.113.7", "203.0.113.7"),
        (2, "10.0.0.3", "203.0.113.7,10.0.0.2", "203.0.113.7"),
        (2, "10.0.0.3", "192.0.2.1 ,203.0.113.7, 10.0.0.2", "203.0.113.7"),
        (2, "10.0.0.3", "10.0.0.2", "10.0.0.3"),  # fewer hops than proxies: not trusted
        (1, "10.0.0.2", "", "10.0.0.2"),
        (1, "10.0.0.2", "not-an-address", "10.0.0.2"),
        (1, "10.0.0.2", "2001:db8::1", "2001:db8::1"),
    ],
)
def test_it_takes_the_client_address_from_the_nth_forwarded_entry(
    rf, settings, count, remote, forwarded, expected
):
    from peridio_console.accounts.throttle import client_address

    settings.TRUSTED_PROXY_COUNT = count
    request = rf.get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)

    assert client_address(request) == expected


@pytest.mark.django_db(transaction=True)
def test_it_counts_every_one_of_many_parallel_failures(settings):
    threads = 24
    settings.LOGIN_FAILURE_LIMIT = threads
    UserFactory(username="frank")
    start = threading.Barrier(threads)
    statuses: list[int] = []

    def fail(n: int) -> None:
        from django.db import connection

        try:
            start.wait()
            # Each from its own address: only the username's count can stop the last log-in.
            response = log_in(Client(), "frank", "wrong", REMOTE_ADDR=f"192.0.2.{n + 1}")
            statuses.append(response.status_code)
        finally:
            connection.close()

    workers = [threading.Thread(target=fail, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert statuses == [200] * threads
    assert log_in(Client(), "frank", PASSWORD, REMOTE_ADDR="192.0.2.200").status_code == 429
