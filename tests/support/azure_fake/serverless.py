"""Serverless endpoints on ARM (api-version 2024-01-01-preview) and their chat completions route.

Shapes: rest-api-specs preview/2024-01-01-preview ``examples/Workspace/ServerlessEndpoint/``
``createOrUpdate.json`` (properties ``authMode: Key``, ``inferenceEndpoint.uri``,
``provisioningState``; ``sku``; the SDK sends ``modelSettings.modelId`` and ``sku.name:
Consumption``), ``delete.json`` (202 with a ``location`` header only, then 200/204),
``listKeys.json`` (``primaryKey``/``secondaryKey``), ``list.json``. The inference URI's host
(``https://<endpoint>.<region>.models.ai.azure.com``) and the chat route
``{scoring_uri}/v1/chat/completions`` with the key in ``Authorization`` are the azureml-examples
notebook's (``sdk/python/jobs/finetuning/standalone/model-as-a-service/chat-completion/
chat_completion_with_model_as_service.ipynb``: it sends the bare key; the Azure AI model
inference API also takes ``Bearer <key>``). Replies and errors are the model inference API's
chat completions (learn.microsoft.com azure/ai-foundry/model-inference/reference
reference-model-inference-chat-completions): ``choices[].message``, ``finish_reason``,
``usage``; errors as ``{"error": {"code", "message", "status"}}``, 401 without the key, 429
with ``Retry-After``.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from tests.support.azure_fake.lro import Operation, Operations
from tests.support.azure_fake.wire import (
    NAME,
    Call,
    Reply,
    Route,
    Scope,
    error_reply,
    json_reply,
    route,
)

SERVERLESS_KEY = "fake-serverless-primary-key"
ANSWER = "The capital of France is Paris."


def chat_completion(text: str = ANSWER) -> dict[str, Any]:
    """A chat completions reply (the model inference API's ``ChatCompletions``)."""
    return {
        "id": "cmpl-fake-1",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "phi-4-ultrachat-200k",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "tool_calls": None},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20},
    }


def chat_error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"code": code, "message": message, "status": status}}


@dataclass
class Serverless:
    scope: Scope
    ops: Operations
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    state: str = "Succeeded"  # where a creation ends
    error: str = "ServerlessEndpointFailed: the model cannot be deployed in this region"
    replies: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # then a completion
    chats: list[Call] = field(default_factory=list)

    def host(self, name: str) -> str:
        return f"https://{name}.{self.scope.location}.models.ai.azure.com"

    def routes(self) -> list[Route]:
        ws = f"{self.scope.ws}/serverlessEndpoints"
        chat = r"https://([^./]+)\." + re.escape(self.scope.location)
        chat += re.escape(".models.ai.azure.com/v1/chat/completions")
        return [
            route("GET", "serverless.list", ws, self._list),
            route("GET", "serverless", f"{ws}/{NAME}", self._get),
            route("PUT", "serverless", f"{ws}/{NAME}", self._put),
            route("DELETE", "serverless", f"{ws}/{NAME}", self._delete),
            route("POST", "serverless.keys", f"{ws}/{NAME}/listKeys", self._keys),
            route("POST", "serverless.chat", chat, self._chat),
        ]

    def _list(self, call: Call, m: re.Match[str]) -> Reply:
        return json_reply(200, {"value": list(self.endpoints.values())})

    def _get(self, call: Call, m: re.Match[str]) -> Reply:
        body = self.endpoints.get(m.group(1))
        return json_reply(200, body) if body is not None else _missing(m.group(1))

    def _put(self, call: Call, m: re.Match[str]) -> Reply:
        name, sent = m.group(1), call.body
        props = sent.get("properties", {})
        self.endpoints[name] = {
            "id": f"{self.scope.ws_path}/serverlessEndpoints/{name}",
            "name": name,
            "type": "Microsoft.MachineLearningServices/workspaces/serverlessEndpoints",
            "location": sent.get("location") or self.scope.location,
            "tags": sent.get("tags") or {},
            "sku": sent.get("sku") or {"name": "Consumption"},
            "properties": {
                "modelSettings": props.get("modelSettings"),
                "authMode": "Key",
                "inferenceEndpoint": {"uri": self.host(name), "headers": {}},
                "provisioningState": "Creating",
            },
        }

        def done(status: str) -> None:
            if name in self.endpoints:
                self.endpoints[name]["properties"]["provisioningState"] = status

        operation = Operation("serverless", lambda: (self.state, self.error), done)
        return json_reply(201, self.endpoints[name], self.ops.accept(operation))

    def _delete(self, call: Call, m: re.Match[str]) -> Reply:
        name = m.group(1)
        if name not in self.endpoints:
            return 204, {}, ""
        self.endpoints[name]["properties"]["provisioningState"] = "Deleting"

        def gone(status: str) -> None:
            self.endpoints.pop(name, None)

        operation = Operation("serverless.delete", lambda: ("Succeeded", ""), gone)
        return 202, self.ops.accept(operation, location=True, async_header=False), ""

    def _keys(self, call: Call, m: re.Match[str]) -> Reply:
        if m.group(1) not in self.endpoints:
            return _missing(m.group(1))
        return json_reply(200, {"primaryKey": SERVERLESS_KEY, "secondaryKey": "fake-secondary"})

    def _chat(self, call: Call, m: re.Match[str]) -> Reply:
        self.chats.append(call)
        if m.group(1) not in self.endpoints:
            return json_reply(*chat_error(404, "NotFound", "no such endpoint"))
        sent = call.headers.get("Authorization", "")
        if sent not in (SERVERLESS_KEY, f"Bearer {SERVERLESS_KEY}"):
            return json_reply(*chat_error(401, "Unauthorized", "Access denied: invalid key"))
        if not isinstance(call.body, dict) or not call.body.get("messages"):
            return json_reply(*chat_error(422, "InvalidInput", "messages is required"))
        status, body = self.replies.pop(0) if self.replies else (200, chat_completion())
        headers = {"Retry-After": "1"} if status == 429 else {}
        return status, {"Content-Type": "application/json", **headers}, json.dumps(body)


def _missing(name: str) -> Reply:
    return error_reply(404, "ResourceNotFound", f"serverless endpoint {name} not found")
