"""Tokens: who may read and who may write (docs/design.md).

A tokens file holds one ``write TOKEN`` or ``read TOKEN`` a line (blank lines and
``#`` comments allowed). A client sends its token as ``authorization: Bearer
TOKEN`` metadata. Without a valid token every RPC but the health check answers
UNAUTHENTICATED; a read-only token calling a write RPC gets PERMISSION_DENIED.
Tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

ROLES = ("read", "write")
WRITE_SERVICE_PREFIX = "/trainboard.v1.WriteService/"
OPEN_PREFIXES = ("/grpc.health.v1.Health/",)


class TokensFileError(ValueError):
    """The tokens file is missing or malformed (the message never shows a token)."""


@dataclass(frozen=True, slots=True)
class Tokens:
    """Token -> role ("read" or "write")."""

    roles: Mapping[bytes, str]

    def role_of(self, presented: bytes) -> str | None:
        """The role of ``presented``, compared against every token in constant time."""
        found: str | None = None
        for token, role in self.roles.items():
            if hmac.compare_digest(token, presented):
                found = role
        return found


def parse_tokens(text: str, source: str = "tokens file") -> Tokens:
    roles: dict[bytes, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or parts[0] not in ROLES:
            raise TokensFileError(
                f"{source}, line {number}: expected 'write TOKEN' or 'read TOKEN'"
            )
        role, token = parts
        if len(token) < 16:
            raise TokensFileError(f"{source}, line {number}: a token needs at least 16 characters")
        roles[token.encode()] = role
    if not roles:
        raise TokensFileError(f"{source} holds no tokens")
    return Tokens(roles)


def load_tokens(path: str | Path) -> Tokens:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise TokensFileError(f"cannot read tokens file {path}: {exc.strerror}") from exc
    return parse_tokens(text, f"tokens file {path}")


def _refusal(code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    def abort(request: Any, context: grpc.ServicerContext) -> None:
        context.abort(code, message)

    return grpc.unary_unary_rpc_method_handler(abort)


class TokenAuthInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Checks every call's bearer token before it reaches a servicer."""

    def __init__(self, tokens: Tokens) -> None:
        self._tokens = tokens
        self._unauthenticated = _refusal(
            grpc.StatusCode.UNAUTHENTICATED,
            "a valid token is required: pass token= or set TRAINBOARD_TOKEN",
        )
        self._read_only = _refusal(
            grpc.StatusCode.PERMISSION_DENIED, "this token may read but not write"
        )

    def intercept_service(
        self,
        continuation: Callable[[Any], grpc.RpcMethodHandler],
        handler_call_details: Any,
    ) -> grpc.RpcMethodHandler:
        method: str = handler_call_details.method
        if method.startswith(OPEN_PREFIXES):
            return continuation(handler_call_details)
        role = self._tokens.role_of(_bearer(handler_call_details.invocation_metadata))
        if role is None:
            return self._unauthenticated
        if role == "read" and method.startswith(WRITE_SERVICE_PREFIX):
            return self._read_only
        return continuation(handler_call_details)


def _bearer(metadata: Any) -> bytes:
    for key, value in metadata or ():
        if key == "authorization":
            text = value.decode() if isinstance(value, bytes) else str(value)
            scheme, _, token = text.partition(" ")
            if scheme.lower() == "bearer":
                return token.strip().encode()
    return b""
