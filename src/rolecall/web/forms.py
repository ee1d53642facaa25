"""Reading request bodies within a size limit (``read_body_within``: forms, SCIM, GraphQL),
and URL-encoded form bodies (OAuth endpoints, the console's forms, OIDC form_post) without a
multipart parser: bounded in size and field count."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request

#: Largest form body read (a JWT assertion or an ID token is at most 16 KB).
MAX_BODY = 64 * 1024
FORM_TYPE = "application/x-www-form-urlencoded"


async def read_body_within(request: Request, max_bytes: int) -> bytes | None:
    """The request's body, or ``None`` once it passes ``max_bytes``: read as it arrives, so a
    huge body is never held whole."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def read_form(
    request: Request, *, max_bytes: int = MAX_BODY, max_fields: int = 20
) -> dict[str, list[str]] | str:
    """The form's fields, or a string saying why the body is not a usable form."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM_TYPE:
        return f"send the parameters as {FORM_TYPE}"
    body = await read_body_within(request, max_bytes)
    if body is None:
        return f"the request body is larger than {max_bytes} bytes"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "the request body is not a URL-encoded form (not UTF-8)"
    try:
        return parse_qs(
            text, keep_blank_values=True, strict_parsing=False, max_num_fields=max_fields
        )
    except ValueError:  # parse_qs's only refusal here: more fields than max_num_fields
        return f"the form has more than {max_fields} fields"


def single(form: dict[str, list[str]], name: str) -> str:
    """The field's first value, or ``""``."""
    values = form.get(name) or [""]
    return values[0]


def from_another_origin(request: Request, public_url: str) -> bool:
    """Whether the browser says the form was sent from a page of another origin (the
    ``Origin`` header: browsers send it with every form POST). A form token alone does not
    stop a page on a sibling host or another port of this host: such a page may set the token
    cookie itself (cookies do not keep ports or sibling subdomains apart), then post the
    matching token. This site is the public URL's origin, or the one the request came to (the
    ``Host`` the browser used). A request without ``Origin`` (not a browser's) relies on the
    token alone."""
    origin = request.headers.get("origin")
    if origin is None:
        return False
    public = urlsplit(public_url)
    if origin == f"{public.scheme}://{public.netloc}":
        return False
    host = request.headers.get("host")
    # Behind a proxy that ends TLS the request arrives as http: either scheme is this host.
    return host is None or origin not in (f"http://{host}", f"https://{host}")
