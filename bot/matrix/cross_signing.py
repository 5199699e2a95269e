"""The bot cross-signs its own device, so that Element's "exclude insecure devices" mode
(MSC4153) neither hides the bot's messages nor withholds room keys from it (DESIGN §5.9).

nio has no cross-signing, so this uploads the master, self-signing and user-signing keys with
``keys/device_signing/upload`` and signs the device key with ``keys/signatures/upload``
(canonical JSON per the spec). The private seeds live in a 0600 file beside the crypto store
and survive the loss of the crypto store, so a replacement device is signed by the same
identity instead of resetting it (a reset works but makes every user's client warn).
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canonicaljson import encode_canonical_json
from nacl.signing import SigningKey

from bot.matrix.raw_api import RawApi, RawApiError
from bot.matrix.secret_files import read_json, write_json

log = logging.getLogger(__name__)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class CrossSigningKeys:
    master: SigningKey
    self_signing: SigningKey
    user_signing: SigningKey

    @staticmethod
    def generate() -> CrossSigningKeys:
        return CrossSigningKeys(
            SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
        )

    @staticmethod
    def from_json(data: dict[str, Any]) -> CrossSigningKeys:
        return CrossSigningKeys(
            *(SigningKey(_unb64(data[k])) for k in ("master", "self_signing", "user_signing"))
        )

    def to_json(self) -> dict[str, str]:
        return {
            "master": _b64(bytes(self.master)),
            "self_signing": _b64(bytes(self.self_signing)),
            "user_signing": _b64(bytes(self.user_signing)),
        }


def public(key: SigningKey) -> str:
    return _b64(bytes(key.verify_key))


def sign_json(obj: dict[str, Any], key: SigningKey, user_id: str) -> dict[str, Any]:
    """Return ``obj`` with a signature by ``key`` added (spec: signing JSON)."""
    unsigned = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    signature = _b64(key.sign(encode_canonical_json(unsigned)).signature)
    signed = dict(obj)
    signatures = {u: dict(s) for u, s in obj.get("signatures", {}).items()}
    signatures.setdefault(user_id, {})[f"ed25519:{public(key)}"] = signature
    signed["signatures"] = signatures
    return signed


def _key_object(user_id: str, usage: str, key: SigningKey) -> dict[str, Any]:
    return {"user_id": user_id, "usage": [usage], "keys": {f"ed25519:{public(key)}": public(key)}}


class CrossSigner:
    def __init__(self, api: RawApi, user_id: str, keys_file: Path, password: str) -> None:
        self._api = api
        self._user_id = user_id
        self._keys_file = keys_file
        self._password = password

    async def ensure(self, device_id: str) -> str:
        """Make sure the identity exists on the server and signs ``device_id``.

        Returns what was done, for the audit log: "created", "reset", "signed" or "unchanged".
        """
        stored = read_json(self._keys_file)
        keys = CrossSigningKeys.from_json(stored) if stored else None
        query = await self._api.keys_query(self._user_id)
        server_master = query.get("master_keys", {}).get(self._user_id)
        server_master_pub = next(iter(server_master["keys"].values())) if server_master else None

        action = "unchanged"
        if keys is None or server_master_pub != public(keys.master):
            action = "reset" if server_master_pub else "created"
            if keys is None:
                keys = CrossSigningKeys.generate()
                write_json(self._keys_file, keys.to_json())  # keep before the server has it
            if action == "reset":
                log.warning(
                    "cross-signing identity on the server is not ours; replacing it "
                    "(users' clients will show the bot's identity changed)"
                )
            await self._upload_identity(keys)
            query = await self._api.keys_query(self._user_id)

        device = query.get("device_keys", {}).get(self._user_id, {}).get(device_id)
        if device is None:
            raise RawApiError(f"device {device_id} has no keys on the server to sign")
        ssk_id = f"ed25519:{public(keys.self_signing)}"
        if ssk_id not in device.get("signatures", {}).get(self._user_id, {}):
            signed = sign_json(device, keys.self_signing, self._user_id)
            signed.pop("unsigned", None)
            _, answer = await self._api.call(
                "POST",
                "/_matrix/client/v3/keys/signatures/upload",
                {self._user_id: {device_id: signed}},
            )
            if answer.get("failures"):
                raise RawApiError(f"signature upload refused: {sorted(answer['failures'])}")
            action = "signed" if action == "unchanged" else action
        return action

    async def _upload_identity(self, keys: CrossSigningKeys) -> None:
        uid = self._user_id
        master = _key_object(uid, "master", keys.master)
        body = {
            "master_key": master,
            "self_signing_key": sign_json(
                _key_object(uid, "self_signing", keys.self_signing), keys.master, uid
            ),
            "user_signing_key": sign_json(
                _key_object(uid, "user_signing", keys.user_signing), keys.master, uid
            ),
        }
        path = "/_matrix/client/v3/keys/device_signing/upload"
        status, answer = await self._api.call("POST", path, body, ok=(200, 401))
        if status == 401:  # user-interactive auth: replacing keys needs the password
            body["auth"] = {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": uid},
                "password": self._password,
                "session": answer.get("session"),
            }
            await self._api.call("POST", path, body)
