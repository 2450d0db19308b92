from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from binaries.api import api, not_found, transfers
from binaries.console import artifacts
from binaries.console import urls as binaries_console
from peridio_console.accounts import urls as accounts_console
from peridio_console.accounts import views

urlpatterns = [
    path("", artifacts.dashboard, name="dashboard"),
    path("organizations/switch", views.switch_organization, name="switch_organization"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("transfer/parts/<str:token>", transfers.part_upload, name="part_upload"),
    path("transfer/binaries/<str:token>", transfers.binary_download, name="binary_download"),
    path("v1/", api.urls),
    path("v1/<path:rest>", not_found),
    path("", include((binaries_console.urlpatterns + accounts_console.urlpatterns, "console"))),
]
