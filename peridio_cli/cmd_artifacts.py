"""peridio artifacts … and peridio artifact-versions …"""

from typing import Any

import click

from peridio_cli.base import (
    Group,
    api,
    emit,
    emit_list,
    fetch_list,
    list_options,
    option,
    read_json_option,
)

PRN = {"metavar": "PRN", "required": True}


def _metadata_options(func: Any) -> Any:
    func = option("--custom-metadata-path", metavar="FILE", help="JSON object from a file.")(func)
    func = option("--custom-metadata", metavar="JSON", help="A JSON object.")(func)
    return option("--description", allow_empty=True, help="Free text.")(func)


@click.group("artifacts", cls=Group)
def artifacts() -> None:
    """Artifacts: the things you ship (firmware, an app, a model)."""


@artifacts.command("create")
@option("--name", required=True, help="Unique within the organization.")
@option(
    "--organization-prn",
    metavar="PRN",
    help="Accepted for the hosted CLI's scripts; the API key decides the organization.",
)
@_metadata_options
@click.pass_context
def artifacts_create(
    ctx: click.Context, name: str, organization_prn: str | None, **kw: Any
) -> None:
    """Create an artifact.

    \b
    Example:
      ARTIFACT_PRN=$(peridio artifacts create --name gateway-firmware -o prn)
    """
    body: dict[str, Any] = {"name": name}
    _fill_descriptive(body, kw)
    answer = api(ctx).call("POST", "/artifacts", json=body, what=f"creating artifact {name!r}")
    emit(ctx, answer["artifact"], "artifact")


@artifacts.command("list")
@list_options
@click.pass_context
def artifacts_list(ctx: click.Context, **params: Any) -> None:
    """List artifacts, newest first unless --order asc.

    \b
    Example:
      peridio artifacts list --all -o prn
    """
    page = fetch_list(ctx, "/artifacts", "artifacts", params, "listing artifacts")
    emit_list(ctx, page, "artifacts", "artifact")


@artifacts.command("get")
@option("--artifact-prn", "--prn", "prn", help="The artifact.", **PRN)
@click.pass_context
def artifacts_get(ctx: click.Context, prn: str) -> None:
    """Print an artifact.

    \b
    Example:
      peridio artifacts get --prn $ARTIFACT_PRN
    """
    answer = api(ctx).call("GET", f"/artifacts/{prn}", what=f"getting artifact {prn}")
    emit(ctx, answer["artifact"], "artifact")


@artifacts.command("update")
@option("--artifact-prn", "--prn", "prn", help="The artifact.", **PRN)
@option("--name", help="A new name.")
@_metadata_options
@click.pass_context
def artifacts_update(ctx: click.Context, prn: str, name: str | None, **kw: Any) -> None:
    """Rename an artifact or change its description or metadata.

    \b
    Example:
      peridio artifacts update --prn $ARTIFACT_PRN --description "Gateway firmware"
    """
    body: dict[str, Any] = {} if name is None else {"name": name}
    _fill_descriptive(body, kw)
    answer = api(ctx).call("PATCH", f"/artifacts/{prn}", json=body, what=f"updating artifact {prn}")
    emit(ctx, answer["artifact"], "artifact")


@artifacts.command("delete")
@option("--artifact-prn", "--prn", "prn", help="The artifact.", **PRN)
@click.pass_context
def artifacts_delete(ctx: click.Context, prn: str) -> None:
    """Delete an artifact that has no versions.

    \b
    Example:
      peridio artifacts delete --prn $ARTIFACT_PRN
    """
    api(ctx).call("DELETE", f"/artifacts/{prn}", what=f"deleting artifact {prn}")


@click.group("artifact-versions", cls=Group)
def artifact_versions() -> None:
    """Versions of an artifact; binaries hang below them."""


@artifact_versions.command("create")
@option("--artifact-prn", help="The artifact.", **PRN)
@option("--version", required=True, help="e.g. 1.4.2")
@_metadata_options
@click.pass_context
def versions_create(ctx: click.Context, artifact_prn: str, version: str, **kw: Any) -> None:
    """Create a version of an artifact.

    \b
    Example:
      VERSION_PRN=$(peridio artifact-versions create --artifact-prn $ARTIFACT_PRN \\
        --version 1.4.2 -o prn)
    """
    body: dict[str, Any] = {"artifact_prn": artifact_prn, "version": version}
    _fill_descriptive(body, kw)
    answer = api(ctx).call(
        "POST", "/artifact_versions", json=body, what=f"creating version {version!r}"
    )
    emit(ctx, answer["artifact_version"], "artifact_version")


@artifact_versions.command("list")
@option("--artifact-prn", metavar="PRN", help="Only this artifact's versions.")
@list_options
@click.pass_context
def versions_list(ctx: click.Context, **params: Any) -> None:
    """List artifact versions, newest first unless --order asc.

    \b
    Example:
      peridio artifact-versions list --artifact-prn $ARTIFACT_PRN -o table
    """
    page = fetch_list(
        ctx, "/artifact_versions", "artifact_versions", params, "listing artifact versions"
    )
    emit_list(ctx, page, "artifact_versions", "artifact_version")


@artifact_versions.command("get")
@option("--artifact-version-prn", "--prn", "prn", help="The version.", **PRN)
@click.pass_context
def versions_get(ctx: click.Context, prn: str) -> None:
    """Print an artifact version.

    \b
    Example:
      peridio artifact-versions get --prn $VERSION_PRN
    """
    answer = api(ctx).call(
        "GET", f"/artifact_versions/{prn}", what=f"getting artifact version {prn}"
    )
    emit(ctx, answer["artifact_version"], "artifact_version")


@artifact_versions.command("update")
@option("--artifact-version-prn", "--prn", "prn", help="The version.", **PRN)
@_metadata_options
@click.pass_context
def versions_update(ctx: click.Context, prn: str, **kw: Any) -> None:
    """Change a version's description or metadata.

    \b
    Example:
      peridio artifact-versions update --prn $VERSION_PRN --description "LTS"
    """
    body: dict[str, Any] = {}
    _fill_descriptive(body, kw)
    answer = api(ctx).call(
        "PATCH", f"/artifact_versions/{prn}", json=body, what=f"updating artifact version {prn}"
    )
    emit(ctx, answer["artifact_version"], "artifact_version")


@artifact_versions.command("delete")
@option("--artifact-version-prn", "--prn", "prn", help="The version.", **PRN)
@click.pass_context
def versions_delete(ctx: click.Context, prn: str) -> None:
    """Delete a version that has no binaries.

    \b
    Example:
      peridio artifact-versions delete --prn $VERSION_PRN
    """
    api(ctx).call("DELETE", f"/artifact_versions/{prn}", what=f"deleting artifact version {prn}")


def _fill_descriptive(body: dict[str, Any], kw: dict[str, Any]) -> None:
    if kw.get("description") is not None:
        body["description"] = kw["description"]
    metadata = read_json_option(
        kw.get("custom_metadata"), kw.get("custom_metadata_path"), "custom-metadata"
    )
    if metadata is not None:
        body["custom_metadata"] = metadata
