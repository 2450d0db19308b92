"""The JSON API over httpx: one client with the API key for /v1, one without it for the
presigned upload and download URLs (a client never sends its key to those)."""

import random
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from peridio_cli import __version__, ui
from peridio_cli.errors import ApiError, Unavailable, UsageProblem

API_TIMEOUT = httpx.Timeout(60.0, connect=15.0)
TRANSFER_TIMEOUT = httpx.Timeout(600.0, connect=15.0)
# Marking a binary hashable completes its upload in the request; on S3 the server gives the
# store up to 10 minutes for that (COMPLETE_READ_TIMEOUT in binaries/storage/s3.py): moto took
# more than 60 s for 5 GiB on a busy machine.
COMPLETE_TIMEOUT = httpx.Timeout(660.0, connect=15.0)
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
USER_AGENT = f"peridio-cli/{__version__} (peridio-console)"


def backoff(attempt: int, base: float = 0.5, cap: float = 8.0) -> float:
    """Exponential backoff with jitter: ~0.5 s, 1 s, 2 s, 4 s, 8 s..."""
    return min(cap, base * (2**attempt)) * (0.75 + random.random() / 2)


class Retry(Exception):
    """An upload or download attempt failed in a way worth retrying, and why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def redact(url: str) -> str:
    """A URL fit for a log: presigned query strings are credentials."""
    parts = urlsplit(url)
    path = parts.path
    if path.startswith("/transfer/"):
        path = path.rsplit("/", 1)[0] + "/…"
    return f"{parts.scheme}://{parts.netloc}{path}" + ("?…" if parts.query else "")


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def error_from(response: httpx.Response, what: str) -> ApiError:
    """The API's {"error": {code, message, field}} as one line naming what failed."""
    status = response.status_code
    code, message, field = f"http_{status}", "", None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        code = str(error.get("code") or code)
        message = one_line(error.get("message") or "")
        field = error.get("field")
    elif isinstance(body, dict) and "detail" in body:
        message = one_line(str(body["detail"]))
    if not message:
        message = one_line(response.text[:300]) or response.reason_phrase
    if status >= 500:
        text = f"{what} failed on the server (HTTP {status} {code}): {message} Try again later."
    else:
        text = f"{what} was refused (HTTP {status} {code}): {message}"
        if field and field not in message:
            text += f" (field: {field})"
        if status == 401:
            text += " Check --api-key or PERIDIO_API_KEY."
    return ApiError(status, code, text, field)


def network_error(exc: Exception, what: str, where: str) -> Unavailable:
    reason = one_line(str(exc)) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        reason = f"timed out ({type(exc).__name__})"
    return Unavailable(
        f"{what} failed: cannot reach {where} ({reason}). Check --base-url or "
        "PERIDIO_BASE_URL, that the server is running, and your network."
    )


def ssl_context(ca_path: str | None) -> ssl.SSLContext:
    if ca_path:
        try:
            return ssl.create_default_context(cafile=ca_path)
        except (OSError, ssl.SSLError) as exc:
            raise UsageProblem(f"cannot use the CA bundle {ca_path}: {exc}.") from None
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


class Api:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        ca_path: str | None = None,
        connections: int = 10,
    ):
        root = base_url.strip().rstrip("/")
        if root.endswith("/v1"):
            root = root[: -len("/v1")]
        self.root = root
        # One TLS context for both clients (building one costs tens of milliseconds).
        verify: Any = ssl_context(ca_path)
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self.http = httpx.Client(
            base_url=root + "/v1",
            headers={
                "Authorization": f"Bearer {api_key}",
                "User-Agent": USER_AGENT,
                "Accept": "application/json",
            },
            timeout=API_TIMEOUT,
            verify=verify,
            limits=limits,
        )
        self.transfer = httpx.Client(
            headers={"User-Agent": USER_AGENT},
            timeout=TRANSFER_TIMEOUT,
            verify=verify,
            limits=limits,
            follow_redirects=True,
        )

    def close(self) -> None:
        self.http.close()
        self.transfer.close()

    def __enter__(self) -> "Api":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        json: Any = None,
        params: dict[str, Any] | None = None,
        retries: int | None = None,
        accept: tuple[int, ...] = (),
        timeout: httpx.Timeout = API_TIMEOUT,
    ) -> Any:
        """One API call; its JSON answer (None for 204). Idempotent calls (GET, PUT) are
        retried on network errors and 429/5xx with exponential backoff."""
        if retries is None:
            retries = 3 if method in ("GET", "PUT", "HEAD") else 0
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                response = self.http.request(
                    method, path, json=json, params=clean or None, timeout=timeout
                )
            except httpx.TransportError as exc:
                ui.debug(f"{method} /v1{path}: {type(exc).__name__}: {exc}")
                if attempt < retries:
                    time.sleep(backoff(attempt))
                    attempt += 1
                    continue
                raise network_error(exc, what, self.root) from None
            ui.debug(
                f"{method} /v1{path} -> {response.status_code} "
                f"({(time.monotonic() - started) * 1000:.0f} ms)"
            )
            if response.status_code in RETRY_STATUSES and attempt < retries:
                time.sleep(backoff(attempt))
                attempt += 1
                continue
            if response.status_code >= 400 and response.status_code not in accept:
                raise error_from(response, what)
            if response.status_code == 204 or not response.content:
                return None
            try:
                return response.json()
            except ValueError:
                raise Unavailable(
                    f"{what}: the server at {self.root} answered HTTP {response.status_code} "
                    "with something other than JSON; is --base-url a Peridio API?"
                ) from None

    # --- Helpers ------------------------------------------------------------------------

    def get_binary(self, prn: str) -> dict[str, Any]:
        return self.call("GET", f"/binaries/{prn}", what=f"getting binary {prn}")["binary"]

    def list_all(
        self, path: str, key: str, *, what: str, params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Every page of a list."""
        rows: list[dict[str, Any]] = []
        query = {"limit": 100, **(params or {})}
        while True:
            page = self.call("GET", path, what=what, params=query)
            rows.extend(page.get(key, []))
            following = page.get("next_page")
            if not following:
                return rows
            query = {**query, "page": following}
