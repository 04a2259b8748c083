"""The workspace's default datastore and its blob container: where azure-ai-ml uploads the
training files when it submits the job (a local ``uri_file`` input).

Shapes: rest-api-specs stable/2024-04-01 ``Datastore/get.json``, ``Datastore/list.json`` and
``Datastore/listSecrets.json``; the Blob service's PUT/HEAD answers and an empty List Blobs
``EnumerationResults`` (learn.microsoft.com/rest/api/storageservices/put-blob, list-blobs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tests.support.azure_fake.wire import NAME, Call, Reply, Route, Scope, json_reply, route

STORAGE_ACCOUNT = "stharness"
CONTAINER = "azureml-blobstore-0001"


@dataclass
class Storage:
    scope: Scope
    blobs: dict[str, bytes] = field(default_factory=dict)

    def routes(self) -> list[Route]:
        ws = self.scope.ws
        blob = re.escape(f"https://{STORAGE_ACCOUNT}.blob.core.windows.net/{CONTAINER}")
        return [
            route("GET", "datastore.list", f"{ws}/datastores", self._datastore_list),
            route("GET", "datastore", f"{ws}/datastores/{NAME}", self._datastore_get),
            route(
                "POST", "datastore.secrets", f"{ws}/datastores/{NAME}/listSecrets", self._secrets
            ),
            route("HEAD", "blob", f"{blob}/([^?]+)", self._blob_head),
            route("GET", "blob", f"{blob}/([^?]+)", self._blob_head),
            route("PUT", "blob", f"{blob}/([^?]+)", self._blob_put),
            route("GET", "blob.list", blob, self._blob_list),
        ]

    def _datastore_body(self) -> dict[str, Any]:
        return {
            "id": f"{self.scope.ws_path}/datastores/workspaceblobstore",
            "name": "workspaceblobstore",
            "properties": {
                "datastoreType": "AzureBlob",
                "isDefault": True,
                "accountName": STORAGE_ACCOUNT,
                "containerName": CONTAINER,
                "endpoint": "core.windows.net",
                "protocol": "https",
                "credentials": {"credentialsType": "AccountKey"},
            },
        }

    def _datastore_list(self, call: Call, m: re.Match[str]) -> Reply:
        return json_reply(200, {"value": [self._datastore_body()]})

    def _datastore_get(self, call: Call, m: re.Match[str]) -> Reply:
        return json_reply(200, self._datastore_body())

    def _secrets(self, call: Call, m: re.Match[str]) -> Reply:
        return json_reply(200, {"secretsType": "Sas", "sasToken": "sv=2023-01-03&sig=fake"})

    def _blob_head(self, call: Call, m: re.Match[str]) -> Reply:
        if m.group(1) not in self.blobs:
            return 404, {"x-ms-error-code": "BlobNotFound"}, ""
        return (
            200,
            {"Content-Length": str(len(self.blobs[m.group(1)])), "x-ms-blob-type": "BlockBlob"},
            "",
        )

    def _blob_put(self, call: Call, m: re.Match[str]) -> Reply:
        headers = {"ETag": '"0x1"', "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT"}
        if "comp=metadata" in call.url:
            return 200, headers, ""
        self.blobs[m.group(1)] = call.raw
        return 201, headers, ""

    def _blob_list(self, call: Call, m: re.Match[str]) -> Reply:
        return (
            200,
            {"Content-Type": "application/xml"},
            (
                '<?xml version="1.0" encoding="utf-8"?><EnumerationResults><Blobs/>'
                "<NextMarker/></EnumerationResults>"
            ),
        )
