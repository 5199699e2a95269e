"""Plain client-server API calls for what matrix-nio does not cover (cross-signing)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp


class RawApiError(Exception):
    """A client-server call that failed; the message carries status and errcode, never tokens."""


class RawApi:
    def __init__(self, homeserver: str, access_token: str) -> None:
        self._base = homeserver.rstrip("/")
        self._token = access_token

    async def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {self._token}"}
        timeout = aiohttp.ClientTimeout(total=30)
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.request(method, self._base + path, json=body, headers=headers) as resp,
        ):
            try:
                data = await resp.json(content_type=None)
            except ValueError:
                data = {}
            if resp.status not in ok:
                raise RawApiError(
                    f"{method} {path.split('?')[0]} answered {resp.status} "
                    f"{data.get('errcode', '')}".strip()
                )
            return resp.status, data if isinstance(data, dict) else {}

    async def keys_query(self, user_id: str) -> dict[str, Any]:
        _, data = await self.call(
            "POST", "/_matrix/client/v3/keys/query", {"device_keys": {user_id: []}}
        )
        return data

    async def logout_token(self) -> None:
        await self.call("POST", "/_matrix/client/v3/logout", {}, ok=(200, 401))

    @staticmethod
    def user_path(user_id: str) -> str:
        return quote(user_id, safe="")
