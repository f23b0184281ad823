"""The production storage path: a real `xdshub serve` whose blobs live in S3-compatible storage.

moto's server on loopback stands in for the S3-compatible store (AWS S3,
MinIO, Ceph RGW); the hub reaches it through boto3 as it would a real one.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import boto3
import pytest
import requests

from hub.client import HubClient
from registry.vocabulary import ErrorCode, ResponseStatus
from repository.consumer import Outgoing, provide, retrieve
from repository.model import DocumentRequest
from tests.factories.metadata import PDF_BYTES, entry_for, submission
from tests.functional.conftest import new_hub, serving

pytestmark = [pytest.mark.functional, pytest.mark.s3]


@pytest.mark.usefixtures("aws_env")
def test_provide_and_retrieve_with_blobs_in_s3(tmp_path: Path, moto_endpoint: str) -> None:
    bucket = f"xdshub-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    hub = new_hub(tmp_path / "var", storage_url=f"s3://{bucket}/blobs?endpoint_url={moto_endpoint}&region=us-east-1")
    assert hub.log is not None
    with serving(hub.data_dir, hub.settings, hub.log), \
            HubClient(hub.bundle("Org A"), base_url=hub.url) as source, \
            HubClient(hub.bundle("Org B"), base_url=hub.url) as consumer:
        ready = requests.get(f"{hub.url}/readyz", verify=str(hub.ca), timeout=10)
        assert ready.json()["checks"] == {"database": "ok", "storage": "ok"}

        entry, refused = entry_for(PDF_BYTES), entry_for(b"refused", hash="0" * 40)
        answer = provide(source, submission(entries=[entry]), {entry.id: Outgoing.of(PDF_BYTES, "application/pdf")})
        assert answer.body.get("status") == ResponseStatus.SUCCESS.value
        answer = provide(source, submission(entries=[refused]), {refused.id: Outgoing.of(b"refused", "text/plain")})
        assert [e.get("errorCode") for e in answer.body.iter("{*}RegistryError")] == \
            [ErrorCode.NON_IDENTICAL_HASH.value]

        keys = [item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
        assert len(keys) == 1 and keys[0].startswith("blobs/")   # the refused document left nothing
        got = retrieve(consumer, [DocumentRequest(hub.settings.repository_unique_id, entry.unique_id or "")])
        try:
            assert got.read(entry.unique_id or "") == PDF_BYTES
        finally:
            got.close()
    s3.close()
