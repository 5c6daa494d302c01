"""One JSON shape for every error the API returns: `{"error": CODE, "message": TEXT, "details": [...]}`."""

from __future__ import annotations

import orjson
from starlette.responses import Response


class ApiError(Exception):
    """Raised anywhere in a request to answer with this status and error body; nothing has been written."""

    def __init__(self, status: int, code: str, message: str, details: list | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = headers or {}

    def response(self) -> Response:
        return json_error(self.status, self.code, self.message, self.details, self.headers)


def json_error(
    status: int, code: str, message: str, details: list | None = None, headers: dict | None = None
) -> Response:
    body = {"error": code, "message": message}
    if details:
        body["details"] = details
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def bad_request(message: str, field: str | None = None) -> ApiError:
    return ApiError(400, "invalid_request", message, [{"field": field, "message": message}] if field else None)
