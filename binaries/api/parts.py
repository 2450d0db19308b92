"""The upload protocol in the API: declare a part and get its upload URL; list parts."""

from django.http import HttpRequest
from ninja import Router, Schema, Status

from binaries import selectors, uploads
from binaries.api.auth import api_context, writer
from binaries.api.schemas import ERRORS, BinaryPartList, DeclaredPartEnvelope, DeclaredPartOut
from binaries.serializers import BinaryPartOut, iso
from peridio_console.core.errors import InvalidInput

router = Router(tags=["binary parts"])


class PartIn(Schema):
    hash: str
    size: int
    expected_binary_size: int | None = None
    # The hosted SDK repeats the path's binary and index in the body.
    binary_prn: str | None = None
    index: int | None = None


def _same_as_path(payload: PartIn, prn: str, index: int) -> None:
    for name, in_path in (("binary_prn", prn), ("index", index)):
        given = getattr(payload, name)
        if given is not None and given != in_path:
            raise InvalidInput(
                f"{name} in the body ({given}) is not the one in the path ({in_path}); send "
                f"the same or leave {name} out of the body.",
                field=name,
            )


def _base_url(request: HttpRequest) -> str:
    return request.build_absolute_uri("/")


@router.put("/binaries/{prn}/parts/{index}", response={201: DeclaredPartEnvelope, **ERRORS})
def put_binary_part(request: HttpRequest, prn: str, index: int, payload: PartIn):
    """Declare part `index` (1-10,000) with its SHA-256 and size; PUT the bytes to the URL
    answered in `presigned_upload_url` before `expires_at`. Re-putting an index replaces it.
    A `content-range` header (the hosted SDK sends one) is not read: the SDK computes it from
    this part's size, which is wrong for a short last part, and index and size say it all."""
    context = writer(request, "uploading a binary part")
    binary = selectors.get_binary(context.organization, prn)
    _same_as_path(payload, prn, index)
    declared = uploads.part_declare(
        binary=binary,
        index=index,
        hash=payload.hash,
        size=payload.size,
        expected_binary_size=payload.expected_binary_size,
        base_url=_base_url(request),
    )
    part = DeclaredPartOut(
        **BinaryPartOut.from_model(declared.part).model_dump(),
        presigned_upload_url=declared.upload_url,
        expires_at=iso(declared.expires_at),
    )
    return Status(201, {"binary_part": part})


@router.get("/binaries/{prn}/parts", response={200: BinaryPartList, **ERRORS})
def list_binary_parts(request: HttpRequest, prn: str):
    """The parts declared so far and their states, as the object store confirms them."""
    context = api_context(request)
    binary = selectors.get_binary(context.organization, prn)
    return {"binary_parts": [BinaryPartOut.from_model(p) for p in uploads.parts_refresh(binary)]}
