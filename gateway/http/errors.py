"""Request-level failures: a status and Convex's ``{"code", "message"}`` body.

Function failures are not these: they are HTTP 200 with ``status: "error"`` (wire
spec 1.4). Everything here is about the request itself: its body, headers, path.
"""

from __future__ import annotations

import json
import logging
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.errors import OutpostError, StoreClosedError
from gateway.redact import redact

log = logging.getLogger("gateway.http")

# Convex's limit for function arguments plus room for the envelope (wire spec 3:
# "function arguments must fit the 16 MiB body limit"); aiohttp's default is 1 MiB.
MAX_BODY_BYTES: Final = 16 * 1024 * 1024 + 2000

# aiohttp's own HTTP errors (routing, body size) keep their status and get a code.
_CODES = {
    400: "BadRequest",
    404: "NotFound",
    405: "MethodNotAllowed",
    413: "PayloadTooLarge",
}


class RequestError(OutpostError):
    """A request the API refuses before any function runs."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def bad_request(code: str, message: str) -> RequestError:
    return RequestError(400, code, message)


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """The JSON body every official client reads from a non-2xx answer (never a key)."""
    body = json.dumps({"code": code, "message": redact(message)}, ensure_ascii=False)
    return web.Response(status=status, text=body, content_type="application/json", headers=headers)


def refusal_response(exc: RequestError | StoreClosedError) -> web.Response:
    """The answer to a request refused before it ran: ours, or the gateway stopping."""
    if isinstance(exc, StoreClosedError):
        return error_response(503, "Unavailable", "the gateway is shutting down; retry shortly")
    return error_response(exc.status, exc.code, exc.message, exc.headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into ``{code, message}``: ours, aiohttp's, and bugs (500)."""
    try:
        return await handler(request)
    except (RequestError, StoreClosedError) as exc:
        return refusal_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _http_error(exc)
    except ConnectionError as exc:
        if _client_gone(request):
            # Normal churn (a closed tab, a dropped upload): nobody reads an answer.
            log.debug("client left during %s %s: %s", request.method, request.path, exc)
            return error_response(400, "ClientDisconnected", "the client closed the connection")
        return _internal_error(request)
    except Exception:
        return _internal_error(request)


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _internal_error(request: web.Request) -> web.Response:
    """A bug: logged with its traceback (rate-limited, redacted), answered 500."""
    log.exception("unexpected error serving %s %s", request.method, request.path)
    return error_response(
        500, "InternalServerError", "the gateway failed to handle this request (see its log)"
    )


def _http_error(exc: web.HTTPException) -> web.Response:
    code = _CODES.get(exc.status, "".join(w.capitalize() for w in exc.reason.split()))
    if exc.status == 413:
        message = (
            f"the request body is larger than the limit of {MAX_BODY_BYTES} bytes "
            "(16 MiB + 2000); send less data per call"
        )
    elif exc.status == 404:
        message = "no such endpoint; the API lives under /api/ (e.g. POST /api/query)"
    elif exc.status == 405:
        allowed = exc.headers.get("Allow", "")
        message = f"this endpoint does not take this method; allowed: {allowed}"
    else:
        message = exc.text or exc.reason
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    return error_response(exc.status, code, message, headers)
