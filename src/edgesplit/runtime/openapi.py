"""The server's OpenAPI document, as the server really answers (issue 14 point 5).

FastAPI derives a document from the route signatures, which here is wrong in three ways: the
binary endpoints read their bodies themselves (no request body declared), their errors are
raised by hand (400, 401, 408, 413, 503 missing; 422 in FastAPI's own shape) and
``/metrics`` is Prometheus text, not JSON. :func:`install` keeps FastAPI's paths and
parameters and replaces each operation's request body and responses with :data:`ROUTES`:

* safetensors bodies (:mod:`.wire`) as ``application/octet-stream``;
* ``/offload`` (Luger 2023 Listing 1) and ``/v1/decode/open`` as JSON with their schema;
* every status a route can answer, each error with the one shape
  ``{"error": "...", "field": "..."}`` (:data:`ERROR`);
* with a token, the bearer scheme on every operation but ``/healthz``;
* the served models as examples of ``model`` (any other name is a 404).

``tests/runtime/test_server_auth_tls.py`` checks the table against real answers.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "what is wrong and how to fix it"},
        "field": {"type": ["string", "null"], "description": "the field or header at fault"},
    },
}

WHY = {
    400: "Malformed body (corrupt safetensors, JSON or base64)",
    401: "Missing or wrong bearer token (header WWW-Authenticate: Bearer)",
    404: "Unknown model or decode session",
    408: "The body did not arrive in time",
    409: "Conflict: a plan for another model fingerprint, or a decode step already running",
    413: "Body over --max-body, or a decode session over --decode-kv",
    422: "Parameters, shapes, dtypes or assignment invalid for the model",
    429: "Decode sessions or their KV memory are at the server's limit",
    500: "Internal error (counted in /metrics)",
    502: "A next hop failed (header X-Edgesplit-Failed names it)",
    503: "At capacity; retry after the Retry-After header's seconds",
}

OCTET = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
SAFETENSORS = {
    "required": True,
    "description": "safetensors of the tensors crossing the cut",
    "content": OCTET,
}
OFFLOAD: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["input_data"],
                "properties": {
                    "input_data": {
                        "type": "object",
                        "required": ["model", "splitting_point", "tensor"],
                        "properties": {
                            "model": {"type": "string"},
                            "splitting_point": {"type": "integer", "minimum": 0},
                            "end": {"type": "integer", "minimum": 0},
                            "tensor": {"type": "string", "description": "base64, C order"},
                            "shape": {"type": "array", "items": {"type": "integer"}},
                            "dtype": {"type": "string", "default": "float32"},
                        },
                    }
                },
            }
        }
    },
}
DECODE_OPEN: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["model", "cuts", "part"],
                "properties": {
                    "model": {"type": "string"},
                    "cuts": {"type": "array", "items": {"type": "integer", "minimum": 1}},
                    "part": {"type": "integer", "minimum": 0},
                    "chain": {"type": "array", "items": {"type": "string"}},
                },
            }
        }
    },
}
JSON_OK = {"application/json": {"schema": {"type": "object"}}}
TEXT_OK = {"text/plain": {"schema": {"type": "string"}}}
BODY = (400, 401, 408, 413, 500, 503)

#: (path, method) -> (request body, 200's content, error statuses).
ROUTES: dict[tuple[str, str], tuple[dict[str, Any] | None, dict[str, Any], tuple[int, ...]]] = {
    ("/v1/infer", "post"): (SAFETENSORS, OCTET, (*BODY, 404, 422)),
    ("/v1/part", "post"): (SAFETENSORS, OCTET, (*BODY, 404, 422)),
    ("/v1/stage", "post"): (SAFETENSORS, OCTET, (*BODY, 404, 409, 422, 502)),
    ("/offload", "post"): (OFFLOAD, JSON_OK, (*BODY, 404, 422)),
    ("/v1/decode/open", "post"): (DECODE_OPEN, JSON_OK, (*BODY, 404, 413, 422, 429, 502)),
    ("/v1/decode/step", "post"): (SAFETENSORS, OCTET, (*BODY, 404, 409, 422, 502)),
    ("/v1/decode/close", "post"): (None, JSON_OK, (*BODY, 404)),
    ("/v1/models", "get"): (None, JSON_OK, (401, 500, 503)),
    ("/v1/wire", "get"): (None, JSON_OK, (401, 503)),
    ("/metrics", "get"): (None, TEXT_OK, (401,)),
    ("/healthz", "get"): (None, JSON_OK, ()),
}


def declared(doc: dict[str, Any], path: str, method: str) -> set[int]:
    """The statuses ``doc`` declares for one operation."""
    return {int(s) for s in doc["paths"][path][method]["responses"]}


def document(app: FastAPI, token: bool) -> dict[str, Any]:
    """The whole document: FastAPI's paths and parameters, :data:`ROUTES`' bodies and statuses."""
    doc = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    paths = doc.setdefault("paths", {})
    paths.setdefault("/v1/wire", {"get": {"summary": "Port of the WebSocket transport"}})
    for (path, method), (body, ok, errors) in ROUTES.items():
        op = paths.get(path, {}).get(method)
        if op is None:
            continue  # a route this build does not have
        if body is None:
            op.pop("requestBody", None)
        else:
            op["requestBody"] = body
        responses: dict[str, Any] = {"200": {"description": "OK", "content": ok}}
        for status in sorted(set(errors) - ({401} if not token else set())):
            answer: dict[str, Any] = {
                "description": WHY[status],
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
            if status == 401:
                answer["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
            if status == 503:
                answer["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
            responses[str(status)] = answer
        op["responses"] = responses
        if token:
            op["security"] = [] if path == "/healthz" else [{"bearer": []}]
    _served_examples(app, paths)
    components = doc.setdefault("components", {})
    components["schemas"] = {"Error": ERROR}
    if token:
        components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return doc


def _served_examples(app: FastAPI, paths: dict[str, Any]) -> None:
    """The served model names as examples of every ``model`` parameter (others are 404)."""
    names = list(getattr(getattr(app.state, "store", None), "names", ()))
    if not names:
        return
    for ops in paths.values():
        for op in ops.values():
            for param in op.get("parameters", []):
                if param.get("name") == "model":
                    param["schema"]["examples"] = names
                    param["example"] = names[0]


def install(app: FastAPI, token: bool) -> None:
    """Serve :func:`document` at ``/openapi.json`` (built once, on first request)."""
    cache: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if "doc" not in cache:
            cache["doc"] = document(app, token)
        return cache["doc"]  # type: ignore[no-any-return]

    app.openapi = openapi  # type: ignore[method-assign]
