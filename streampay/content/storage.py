"""Where media and thumbnails live: local disk (default), S3 (S3_BUCKET_NAME), or IPFS (IPFS_API_URL).

Each content row records the backend it was written to, so a file is always read from where it is.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from flask import current_app

if TYPE_CHECKING:
    import requests


class StorageError(RuntimeError):
    """The backend could not be reached or refused; worth retrying later."""


class LocalStorage:
    name = "local"

    def __init__(self, root: str):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"key escapes the media folder: {key!r}")
        return path

    def save(self, key: str, fileobj: BinaryIO, content_type: str) -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(path.suffix + ".part")
        with open(partial, "wb") as out:
            shutil.copyfileobj(fileobj, out, 1024 * 1024)
        os.replace(partial, path)
        return key

    @contextlib.contextmanager
    def local_file(self, key: str) -> Iterator[str]:
        yield str(self._path(key))

    def local_path(self, key: str) -> str | None:
        return str(self._path(key))

    def url(self, key: str, expires: int = 300) -> str | None:
        return None

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


class S3Storage:
    name = "s3"

    def __init__(self, bucket: str, **client_options):
        # boto3 costs a quarter of a second to import: paid only where S3 is configured, not by every command.
        import boto3
        from botocore.config import Config as BotoConfig

        self.bucket = bucket
        self.client = boto3.client("s3", config=BotoConfig(retries={"max_attempts": 3}), **client_options)

    def _call(self, method: str, **kwargs):
        try:
            return getattr(self.client, method)(Bucket=self.bucket, **kwargs)
        except self.client.exceptions.NoSuchKey:
            raise
        except Exception as exc:  # botocore raises many kinds; all mean "not now"
            raise StorageError(f"S3 {method} failed: {exc.__class__.__name__}") from exc

    def save(self, key: str, fileobj: BinaryIO, content_type: str) -> str:
        try:
            self.client.upload_fileobj(fileobj, self.bucket, key, ExtraArgs={"ContentType": content_type})
        except Exception as exc:
            raise StorageError(f"S3 upload failed: {exc.__class__.__name__}") from exc
        return key

    @contextlib.contextmanager
    def local_file(self, key: str) -> Iterator[str]:
        with tempfile.NamedTemporaryFile(suffix=Path(key).suffix) as tmp:
            try:
                self.client.download_fileobj(self.bucket, key, tmp)
            except Exception as exc:
                raise StorageError(f"S3 download failed: {exc.__class__.__name__}") from exc
            tmp.flush()
            yield tmp.name

    def local_path(self, key: str) -> str | None:
        return None

    def url(self, key: str, expires: int = 300) -> str | None:
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires
        )

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except Exception:
            return False

    def delete(self, key: str) -> None:
        self._call("delete_object", Key=key)


class IPFSStorage:
    """Kubo's HTTP RPC API: add pins the file and the key becomes its CID."""

    name = "ipfs"

    def __init__(self, api_url: str, gateway_url: str | None):
        self.api = api_url.rstrip("/")
        self.gateway = (gateway_url or "").rstrip("/") or None

    def _post(self, path: str, **kwargs) -> requests.Response:
        import requests  # only IPFS's backend speaks HTTP: a `flask` command need not load it

        try:
            reply = requests.post(f"{self.api}/api/v0/{path}", timeout=60, **kwargs)
            reply.raise_for_status()
            return reply
        except requests.RequestException as exc:
            raise StorageError(f"IPFS {path} failed: {exc.__class__.__name__}") from exc

    def save(self, key: str, fileobj: BinaryIO, content_type: str) -> str:
        reply = self._post("add", params={"pin": "true", "cid-version": "1"}, files={"file": (key, fileobj)})
        return reply.json()["Hash"]

    @contextlib.contextmanager
    def local_file(self, key: str) -> Iterator[str]:
        with tempfile.NamedTemporaryFile() as tmp:
            reply = self._post("cat", params={"arg": key}, stream=True)
            for chunk in reply.iter_content(1024 * 1024):
                tmp.write(chunk)
            tmp.flush()
            yield tmp.name

    def local_path(self, key: str) -> str | None:
        return None

    def url(self, key: str, expires: int = 300) -> str | None:
        return f"{self.gateway}/ipfs/{key}" if self.gateway else None

    def exists(self, key: str) -> bool:
        try:
            self._post("block/stat", params={"arg": key})
            return True
        except StorageError:
            return False

    def delete(self, key: str) -> None:
        with contextlib.suppress(StorageError):
            self._post("pin/rm", params={"arg": key})


def default_backend() -> str:
    cfg = current_app.config
    if cfg.get("S3_BUCKET_NAME"):
        return "s3"
    if cfg.get("IPFS_API_URL"):
        return "ipfs"
    return "local"


def get_storage(name: str | None = None):
    """The backend by name (as recorded on a row), or the configured default for new files."""
    name = name or default_backend()
    cache = current_app.extensions.setdefault("streampay.storage", {})
    if name not in cache:
        cfg = current_app.config
        if name == "s3":
            options = {
                "region_name": cfg["AWS_REGION"],
                "endpoint_url": cfg.get("S3_ENDPOINT_URL"),
                "aws_access_key_id": cfg.get("AWS_ACCESS_KEY_ID"),
                "aws_secret_access_key": cfg.get("AWS_SECRET_ACCESS_KEY"),
            }
            cache[name] = S3Storage(cfg["S3_BUCKET_NAME"], **{k: v for k, v in options.items() if v})
        elif name == "ipfs":
            cache[name] = IPFSStorage(cfg["IPFS_API_URL"], cfg.get("IPFS_GATEWAY_URL"))
        elif name == "local":
            cache[name] = LocalStorage(cfg.get("MEDIA_ROOT") or os.path.join(current_app.instance_path, "media"))
        else:
            raise ValueError(f"unknown storage backend {name!r}")
    return cache[name]
