"""Log-in with throttling: repeated failures for one username or one address are slowed down."""

import hashlib
from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def _keys(request: HttpRequest) -> list[str]:
    username = (request.POST.get("username") or "").strip().lower()
    ip = request.META.get("REMOTE_ADDR", "")
    digest = hashlib.sha256(username.encode()).hexdigest()[:32]
    return [f"login-fail:user:{digest}", f"login-fail:ip:{ip}"]


def _blocked(request: HttpRequest) -> bool:
    """A username is blocked after the limit; an address (possibly a shared proxy) after 4x."""
    user_key, ip_key = _keys(request)
    counts = cache.get_many([user_key, ip_key])
    limit = settings.LOGIN_FAILURE_LIMIT
    return counts.get(user_key, 0) >= limit or counts.get(ip_key, 0) >= 4 * limit


class ThrottledLoginView(auth_views.LoginView):
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if _blocked(request):
            minutes = max(1, settings.LOGIN_FAILURE_WINDOW_SECONDS // 60)
            return render(
                request,
                "registration/login.html",
                {
                    "form": self.get_form(),
                    "throttled": (
                        f"Too many failed log-ins. Wait {minutes} minutes, then try again."
                    ),
                },
                status=429,
            )
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form: Any) -> HttpResponse:
        for key in _keys(self.request):
            cache.add(key, 0, settings.LOGIN_FAILURE_WINDOW_SECONDS)
            try:
                cache.incr(key)
            except ValueError:
                cache.set(key, 1, settings.LOGIN_FAILURE_WINDOW_SECONDS)
        return super().form_invalid(form)

    def form_valid(self, form: Any) -> HttpResponse:
        cache.delete_many(_keys(self.request))
        return super().form_valid(form)
