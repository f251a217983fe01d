"""Objects held by a Shipyard server (``http(s)://host/api/v1/objects``).

Uploads stream the file (the server hashes while it spools and keeps the bytes only if they
hash to the name); downloads stream to the target file while hashing, so the store checks
what arrived. An interrupted transfer is simply started again: objects are named by content.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from blake3 import blake3

from shipyard.artifacts._backends import COPY_CHUNK, ObjectBackend, _changed_error
from shipyard.errors import (
    AuthenticationError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    StoreError,
)

__all__ = ["HttpBackend"]


class HttpBackend(ObjectBackend):
    """The artifact store of a Shipyard server."""

    def __init__(self, url: str, token: str | None = None, transport: Any = None) -> None:
        import httpx

        self.url = url.rstrip("/")
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(headers=headers, timeout=300.0, transport=transport)

    def close(self) -> None:
        self._http.close()

    def location(self, digest: str) -> str:
        return f"{self.url}/{digest}"

    def _send(self, method: str, digest: str, **kwargs: Any) -> Any:
        import httpx

        try:
            return self._http.request(method, self.location(digest), **kwargs)
        except httpx.TransportError as exc:
            raise StoreError(f"cannot reach the artifact store at {self.url}: {exc}") from None

    def stored_size(self, digest: str) -> int | None:
        response = self._send("HEAD", digest)
        if response.status_code == 404:
            return None
        _check(response)
        return int(response.headers["content-length"])

    def read(self, digest: str) -> bytes:
        response = self._send("GET", digest)
        _check(response, digest)
        return bytes(response.content)

    def write_bytes(self, digest: str, data: bytes, *, sync: bool = True) -> None:
        _check(self._send("PUT", digest, content=data), digest)

    def write_file(self, digest: str, source: str, *, sync: bool = True) -> int:
        hasher = blake3()
        sent = 0

        def chunks() -> Iterator[bytes]:
            nonlocal sent
            with open(source, "rb") as file:
                while chunk := file.read(COPY_CHUNK):
                    hasher.update(chunk)
                    sent += len(chunk)
                    yield chunk

        response = self._send("PUT", digest, content=chunks())
        if response.status_code == 400 and hasher.hexdigest() != digest:
            raise _changed_error(source, digest, hasher.hexdigest())
        _check(response, digest)
        return sent

    def copy_out(self, digest: str, target: str) -> str:
        import httpx

        hasher = blake3()
        try:
            with self._http.stream("GET", self.location(digest)) as response:
                _check(response, digest)
                with open(target, "xb") as out:
                    for chunk in response.iter_bytes(COPY_CHUNK):
                        hasher.update(chunk)
                        out.write(chunk)
        except httpx.TransportError as exc:
            raise StoreError(f"cannot reach the artifact store at {self.url}: {exc}") from None
        return hasher.hexdigest()

    def iter_digests(self) -> Iterator[str]:
        raise InvalidArgumentError(
            "a Shipyard server does not list its objects: run this on the server's store"
        )


def _check(response: Any, digest: str = "") -> None:
    status = response.status_code
    if status < 400:
        return
    try:
        response.read()
        message = str(response.json().get("message", ""))
    except ValueError:
        message = response.text[:300]
    raise _error(status, message or f"no object {digest}")


def _error(status: int, message: str) -> Exception:
    if status == 404:
        return NotFoundError(message)
    if status == 401:
        return AuthenticationError(message)
    if status == 403:
        return PermissionDeniedError(message)
    if status in (400, 413, 422):
        return InvalidArgumentError(message)
    return StoreError(f"the artifact store answered {status}: {message}")
