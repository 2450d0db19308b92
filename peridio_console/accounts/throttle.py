"""Failed log-ins, counted per person and per client address wherever a password is checked.

The counts live in a database table, not in the cache: the default cache is a FileBasedCache,
whose incr() is a read then a write, so failures arriving in parallel overwrite each other's
count (an attacker's best case). A conditional UPDATE ... SET count = count + 1 is atomic on
PostgreSQL (the row lock, then the WHERE read again) and on SQLite (one writer at a time), and
every web process and worker on every machine sees the same count.
"""

import hashlib
import ipaddress
import unicodedata
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone

from peridio_console.accounts.models import LoginFailure

ADDRESS_FACTOR = 4  # an address may be a shared proxy or NAT: it gets 4x a username's limit


class LoginThrottled(Exception):
    """Raised instead of checking a password while its username or address has to wait."""

    def __init__(self) -> None:
        minutes = max(1, settings.LOGIN_FAILURE_WINDOW_SECONDS // 60)
        self.message = f"Too many failed log-ins. Wait {minutes} minutes, then try again."
        super().__init__(self.message)


def client_address(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or behind TRUSTED_PROXY_COUNT = N proxies the Nth
    X-Forwarded-For entry from the right. Each of our proxies appends the address it was
    reached from, so entries further left are whatever the client chose to send."""
    remote = request.META.get("REMOTE_ADDR", "")
    proxies = settings.TRUSTED_PROXY_COUNT
    if not proxies:
        return remote
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    if len(hops) < proxies:  # the request did not come through all of them
        return remote
    try:
        return str(ipaddress.ip_address(hops[-proxies]))
    except ValueError:
        return remote


def username_key(username: str) -> str:
    """One key for every spelling authentication takes for one name: NFKC, as Django's
    AbstractBaseUser.normalize_username (full-width and bold letters become plain ones),
    and casefolded, so case variants wait with it too."""
    name = unicodedata.normalize("NFKC", username.strip())
    folded = unicodedata.normalize("NFKC", name.casefold())
    return "user:" + hashlib.sha256(folded.encode()).hexdigest()[:32]


def _limits(username: str, request: HttpRequest | None) -> dict[str, int]:
    limit = settings.LOGIN_FAILURE_LIMIT
    limits = {username_key(username): limit}
    address = client_address(request) if request is not None else ""
    if address:
        limits[f"ip:{address}"] = ADDRESS_FACTOR * limit
    return limits


def _window_start(now: datetime) -> datetime:
    return now - timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS)


def check(*, username: str, request: HttpRequest | None) -> None:
    """Raise LoginThrottled when the username or the address has used up its failures."""
    limits = _limits(username, request)
    counts = LoginFailure.objects.filter(
        key__in=limits, last_at__gt=_window_start(timezone.now())
    ).values_list("key", "count")
    if any(count >= limits[key] for key, count in counts):
        raise LoginThrottled


def record_failure(*, username: str, request: HttpRequest | None) -> None:
    now = timezone.now()
    for key in _limits(username, request):
        _count(key, now)


def _count(key: str, now: datetime) -> None:
    """One more failure under `key`, never lost to a failure counted at the same moment."""
    more = {"count": F("count") + 1, "last_at": now}
    if LoginFailure.objects.filter(key=key, last_at__gt=_window_start(now)).update(**more):
        return
    # No count running for the key: start one, after sweeping expired ones (its own too).
    LoginFailure.objects.filter(last_at__lte=_window_start(now)).delete()
    try:
        with transaction.atomic():
            LoginFailure.objects.create(key=key, count=1, last_at=now)
    except IntegrityError:  # a parallel failure started it first: add to theirs
        LoginFailure.objects.filter(key=key).update(**more)


def forget(*, username: str) -> None:
    """A right password clears the username's failures. Not the address's: one account of
    one's own must not reset the count of guesses at everybody else's."""
    LoginFailure.objects.filter(key=username_key(username)).delete()
