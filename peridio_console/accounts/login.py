"""Log-in throttling at the one place every password is checked: the authentication backend
(the console's /login/, the admin's /admin/login/ and any later form call authenticate())."""

from collections.abc import Callable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from peridio_console.accounts import throttle


class ThrottledModelBackend(ModelBackend):
    """Django's ModelBackend, refusing to check a password while its username or address
    waits, and counting the wrong ones."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        if username is None:
            username = kwargs.pop(get_user_model().USERNAME_FIELD, None)
        if username is None or password is None:
            return None
        throttle.check(username=username, request=request)
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            throttle.record_failure(username=username, request=request)
        else:
            throttle.forget(username=username)
        return user


class LoginThrottleMiddleware:
    """A throttled log-in, from whichever form, answers 429 with the log-in page and the wait
    (the backend raises inside the form's validation, where no view can choose a status)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, throttle.LoginThrottled):
            return None
        context = {"throttled": exception.message}
        return render(request, "registration/login.html", context, status=429)
