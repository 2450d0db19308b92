"""The JSON API over http.client with the API key for /v1, and httpx without it for the
presigned upload and download URLs (a client never sends its key to those)."""

import json as json_module
import random
import select
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from peridio_cli import __version__, ui
from peridio_cli.errors import ApiError, Unavailable, UsageProblem

if TYPE_CHECKING:  # httpx and ssl are imported when needed: `peridio --help` skips them
    import ssl

    import httpx

DEFAULT_TIMEOUT = 30.0  # seconds an API call may take, its retries included
CONNECT_TIMEOUT = 10.0
TRANSFER_SECONDS = 600.0  # between two bytes of a part or a download
API_RETRIES = 3  # idempotent calls: about 3.5 s of backoff
UPLOAD_RETRIES = 6  # calls during an upload: about 23 s, as long as a part transfer keeps trying
# Marking a binary hashable completes its upload in that request; on S3 the server gives the
# store up to 10 minutes for it (COMPLETE_READ_TIMEOUT in binaries/storage/s3.py): moto took
# 361 s for 5 GiB on a busy machine. That one call may take this long, whatever --timeout says.
COMPLETE_SECONDS = 660.0
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


def error_from(response: "httpx.Response | Answer", what: str) -> ApiError:
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
    if not message and _looks_like_html(response):
        message = (
            f"the server answered an HTML page ({response.reason_phrase}), not the API's JSON."
        )
        if status == 404:
            message += (
                " Check --base-url (PERIDIO_BASE_URL): the server's root such as "
                "https://console.example.com; the CLI adds /v1."
            )
        elif status in (502, 503, 504):
            message += " A proxy in front of the server could not reach it."
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


def _reason(exc: Exception) -> str:
    if isinstance(exc, TimeoutError) or type(exc).__name__.endswith("Timeout"):
        return f"no answer in time ({type(exc).__name__})"
    return one_line(str(exc)) or type(exc).__name__


def _looks_like_html(response: "httpx.Response | Answer") -> bool:
    head = response.text[:200].lstrip().lower()
    return "html" in response.headers.get("content-type", "") or head.startswith(
        ("<!doctype", "<html")
    )


def network_error(
    exc: Exception, what: str, where: str, timeout: float | None = None
) -> Unavailable:
    reason = _reason(exc)
    if timeout is not None and (
        isinstance(exc, TimeoutError) or type(exc).__name__.endswith("Timeout")
    ):
        reason = f"no answer within {timeout:g} s, the time-out (--timeout, PERIDIO_TIMEOUT)"
    return Unavailable(
        f"{what} failed: cannot reach {where} ({reason}). Check --base-url or "
        "PERIDIO_BASE_URL, that the server is running, and your network."
    )


def ssl_context(ca_path: str | None) -> "ssl.SSLContext":
    import ssl

    if ca_path:
        try:
            return ssl.create_default_context(cafile=ca_path)
        except (OSError, ssl.SSLError) as exc:
            raise UsageProblem(f"cannot use the CA bundle {ca_path}: {exc}.") from None
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


class Answer:
    """An API answer, read whole: what error_from and the callers read of a response (the
    same names as httpx.Response, which the transfers use)."""

    def __init__(self, status: int, reason: str, headers: dict[str, str], content: bytes):
        self.status_code = status
        self.reason_phrase = reason
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json_module.loads(self.content)


class Api:
    """The JSON API over the standard library's http.client (one kept-alive connection per
    thread: importing httpx costs more than a list command's whole request), and an httpx
    client, made on first use, for the presigned upload and download URLs."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        ca_path: str | None = None,
        connections: int = 10,
        timeout: float = DEFAULT_TIMEOUT,
    ):
        self.timeout = timeout
        root = base_url.strip().rstrip("/")
        if root.endswith("/v1"):
            root = root[: -len("/v1")]
        self.root = root
        parts = urlsplit(root)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/") + "/v1"
        self.ca_path = ca_path
        self.connections = connections
        self.headers = {
            "Authorization": f"Bearer {api_key}",
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }
        self._local = threading.local()
        self._open: list[Any] = []
        self._lock = threading.Lock()
        self._context: ssl.SSLContext | None = None
        self._transfer: Any = None
        if self.https:
            self._context = ssl_context(ca_path)

    @property
    def transfer(self) -> "httpx.Client":
        """The client for presigned URLs (never sent the API key)."""
        with self._lock:
            if self._transfer is None:
                import httpx

                limits = httpx.Limits(
                    max_connections=self.connections, max_keepalive_connections=self.connections
                )
                self._transfer = httpx.Client(
                    headers={"User-Agent": USER_AGENT},
                    timeout=httpx.Timeout(TRANSFER_SECONDS, connect=15.0),
                    verify=self._context or ssl_context(self.ca_path),
                    limits=limits,
                    follow_redirects=True,
                )
            return self._transfer

    def close(self) -> None:
        with self._lock:
            for conn in self._open:
                conn.close()
            self._open.clear()
            if self._transfer is not None:
                self._transfer.close()

    def __enter__(self) -> "Api":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connection(self, timeout: float) -> Any:
        """This thread's connection, a new one when the server has closed the kept one (a
        readable idle socket is one the server closed: a request on it would be lost)."""
        import http.client

        conn = getattr(self._local, "conn", None)
        if conn is not None and conn.sock is not None:
            readable, _, _ = select.select([conn.sock], [], [], 0)
            if readable:
                self._drop()
                conn = None
        if conn is None:
            if self.https:
                conn = http.client.HTTPSConnection(
                    self.host, self.port, timeout=timeout, context=self._context
                )
            else:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
            self._local.conn = conn
            with self._lock:
                self._open.append(conn)
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _request(
        self, method: str, path: str, body: Any, params: dict[str, Any], timeout: float
    ) -> Answer:
        target = self.prefix + path + ("?" + urlencode(params) if params else "")
        headers = dict(self.headers)
        payload = None
        if body is not None:
            payload = json_module.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn = self._connection(timeout)
        try:
            conn.request(method, target, body=payload, headers=headers)
            response = conn.getresponse()
            content = response.read()
        except BaseException:
            self._drop()
            raise
        if response.will_close:
            self._drop()
        found = {k.lower(): v for k, v in response.getheaders()}
        return Answer(response.status, response.reason, found, content)

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
        at_least: float = 0.0,
    ) -> Any:
        """One API call; its JSON answer (None for 204). Idempotent calls (GET, PUT) are
        retried on network errors and 429/5xx with exponential backoff; the whole call,
        retries included, takes at most the time-out (--timeout, PERIDIO_TIMEOUT)."""
        import http.client

        if retries is None:
            retries = API_RETRIES if method in ("GET", "PUT", "HEAD") else 0
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        attempt = 0
        began = time.monotonic()
        budget = max(self.timeout, at_least)  # the whole call, retries included
        while True:
            started = time.monotonic()
            left = budget - (started - began)
            try:
                if left <= 0:
                    raise TimeoutError("no time left")
                response = self._request(method, path, json, clean, left)
            except (OSError, http.client.HTTPException) as exc:
                ui.debug(f"{method} {self.prefix}{path}: {type(exc).__name__}: {exc}")
                pause = backoff(attempt)
                if attempt < retries and time.monotonic() + pause < began + budget:
                    ui.debug(f"{what}: {_reason(exc)}; retrying in {pause:.1f} s.")
                    time.sleep(pause)
                    attempt += 1
                    continue
                raise network_error(exc, what, self.root, budget) from None
            ui.debug(
                f"{method} {self.prefix}{path} -> {response.status_code} "
                f"({(time.monotonic() - started) * 1000:.0f} ms)"
            )
            pause = backoff(attempt)
            if (
                response.status_code in RETRY_STATUSES
                and attempt < retries
                and time.monotonic() + pause < began + budget
            ):
                ui.debug(f"retrying in {pause:.1f} s")
                time.sleep(pause)
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
                    "with something other than JSON; is --base-url a Peridio API (the server's "
                    "root, without /v1)?"
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
