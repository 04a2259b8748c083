"""Builds tests/cassettes/azure-sdk-assets/ from the Azure SDK team's public recordings.

The recordings in Azure/azure-sdk-assets (python/sdk/ml/azure-ai-ml/tests/recordings/) are real
exchanges of azure-ai-ml with the live service, sanitized by the SDK's test proxy. They are the
strongest evidence this project has of what the service answers, so the unit suite replays the
harness's own steps against them (tests/unit/test_cassettes.py). This script only moves data:
each excerpt under tools/sdk_recordings/ holds entries of one recording in the test proxy's own
format, with the recording's path and commit; the script rewrites them as a vcrpy cassette in
the format ``--record-traffic`` writes and ``harness.replay`` reads:

- the test proxy's ``Sanitized.azure.com`` host is ARM's, ``management.azure.com``, and its
  ``Sanitized.api.azureml.ms`` the registry discovery endpoint, ``eastus.api.azureml.ms``;
- the ARM signing parameters of operation URLs (``t``, ``c``, ``s``, ``h``) are dropped, in the
  request URLs and in the headers that point at them alike, so a poll still finds its answer;
- every interaction names its source file and entry, and goes through the Scrubber that
  ``--record-traffic`` uses: the test proxy's sanitizers miss values now and then (a
  subscription id in test_create_get_download_model_registry; a bearer token in the last entry
  of test_online_deployment, never excerpted);
- the excerpts come in the order the steps first use them, each once.

One step has no recording: the SDK's recorded tests never cancel a job when played back, so no
public recording answers a cancel. Its POST and poll come from the REST API spec's example of
Jobs_Cancel (tools/rest_api_examples/, in the same entry format; its ``source.kind`` says it is
a REST API example, and so does every interaction taken from it): the documented answer, not
recorded traffic.

    python tools/sdk_recordings_to_cassette.py [--out tests/cassettes/azure-sdk-assets]

To add a step: copy the recording's entries (from a checkout of azure-sdk-assets) into an
excerpt next to the others, add the step to STEPS (its ``source``: the excerpt's path under
tools/, or a list of them), run this script, and check the replay.
"""

from __future__ import annotations

import argparse
import json
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import yaml

from harness.backends.azure.scrubbing import Scrubber

TOOLS = Path(__file__).resolve().parent
DEFAULT_OUT = TOOLS.parent / "tests" / "cassettes" / "azure-sdk-assets"
# The test proxy's sanitized hosts, as azure-ai-ml addresses them in the public cloud: ARM, and
# the registry discovery endpoint (eastus; the recorded answer names its environment eastus).
SANITIZED_HOSTS = {
    "Sanitized.azure.com": "management.azure.com",
    "Sanitized.api.azureml.ms": "eastus.api.azureml.ms",
}
SIGNING_PARAMS = frozenset({"t", "c", "s", "h"})
URL_HEADERS = ("Azure-AsyncOperation", "Location")
# What the unit suite replays, in order: the harness's step, its arguments, and what the
# recording answers. A recording made by the SDK's own test ends where that test stopped (it
# did not wait for the deletion), so a step may stop at a request the recording never sent:
# ``stops_at`` names it, and the replay must report exactly that request.
WS = (
    "https://management.azure.com/subscriptions/00000000-0000-0000-0000-000000000/resourceGroups/"
    "00000/providers/Microsoft.MachineLearningServices/workspaces/00000"
)
OPERATIONS = (
    "https://management.azure.com/subscriptions/00000000-0000-0000-0000-000000000/providers/"
    "Microsoft.MachineLearningServices/locations/westus"
)
LIFECYCLE = "online-ept-19282f598c8c49a"
CLUSTER = "test49208482942"
SWEEP_JOB = "test_910316408761"
REGISTRY = "sdkv2-testFeed"
STEPS: list[dict[str, Any]] = [
    {
        "step": "begin_create_endpoint",
        "args": {"name": "online-ept-6696557f8dec409"},
        "source": "sdk_recordings/online_endpoint_e2e.json",
        "proves": "the harness's workspace GET and endpoint PUT are the routes the live service "
        "answered (200, 201) to azure-ai-ml 1.32, and the harness reads the real 201 body",
        "stops_at": [
            f"GET {WS}/onlineEndpoints/online-ept-6696557f8dec409?",  # the excerpt ends before
            f"GET {OPERATIONS}/mfeOperationsStatus/",  # the SDK poller's first poll
        ],
    },
    {
        "step": "begin_create_endpoint",
        "args": {"name": LIFECYCLE},
        "source": "sdk_recordings/online_endpoint_lifecycle.json",
        "proves": "endpoint creation: workspace GET, PUT 201 with Azure-AsyncOperation, the "
        "endpoint's GET and its deployments list, as the live service answered them",
        "stops_at": [],
    },
    {
        "step": "wait_for_endpoint",
        "args": {"name": LIFECYCLE},
        "source": "sdk_recordings/online_endpoint_lifecycle.json",
        "proves": "the SDK poller the harness waits on follows the real mfeOperationsStatus "
        "polls (Updating, Updating, Succeeded) and the harness reads the scoring URI",
        "stops_at": [],
    },
    {
        "step": "endpoint_key_refused",
        "args": {"name": LIFECYCLE},
        "source": "sdk_recordings/online_endpoint_lifecycle.json",
        "proves": "get_keys on an AMLToken endpoint answers a token (POST .../token), not "
        "listKeys: the harness says so instead of failing on a missing primary_key",
        "stops_at": [],
    },
    {
        "step": "delete_endpoint",
        "args": {"name": LIFECYCLE},
        "source": "sdk_recordings/online_endpoint_lifecycle.json",
        "proves": "the live DELETE answers 202 with Azure-AsyncOperation and Location, and "
        "the harness's deletion waits through the real polls to Succeeded",
        "stops_at": [],
    },
    {
        "step": "deploy",
        "args": {
            "endpoint": "online-ept-5ce3da3806e04e3",
            "name": "online-dpm-1a5183914317445",
            "instance_type": "Standard_DS3_v2",
            "model": WS.removeprefix("https://management.azure.com")
            + "/models/1498425f064ef007b4f000a85a5f4645/versions/1",
        },
        "source": "sdk_recordings/online_deployment_traffic.json",
        "proves": "the harness's deployment: the SDK's endpoint check, the workspace GET, the "
        "deployment PUT 201 and its real polls to Succeeded, the final GET it reads the state "
        "from, then the traffic update (endpoint GET with its deployments list, PUT, polls, "
        "GET) that it reads 100% back from. The endpoint GET the harness sends before its "
        "traffic PUT has no counterpart in the recording (the SDK's test changed the traffic "
        "of its local object): it is answered by the recording's next GET of that endpoint",
        "stops_at": [],
    },
    {
        "step": "endpoint_key",
        "args": {"name": "online-ept-5ce3da3806e04e3", "key": "scrubbed"},
        "source": "sdk_recordings/online_deployment_traffic.json",
        "proves": "on a key endpoint the harness's key comes from the real listKeys answer "
        "(POST .../listKeys after the endpoint's GET), its primaryKey read; the value is the "
        "placeholder the SDK's test proxy and this converter's scrubber left",
        "stops_at": [],
    },
    {
        "step": "get_job",
        "args": {"name": SWEEP_JOB, "status": "Running"},
        "source": "sdk_recordings/sweep_job_running.json",
        "proves": "the harness's job GET is the route the live service answered, and it reads "
        "a real job's status and studio URL",
        "stops_at": [],
    },
    {
        "step": "delete_job",
        "args": {"name": SWEEP_JOB},
        "source": ["sdk_recordings/sweep_job_running.json", "rest_api_examples/job_cancel.json"],
        "proves": "teardown reads the job's real status (Running, not final) and cancels it: "
        "the cancel POST and the poll of its Location are answered by the REST API spec's "
        "example of Jobs_Cancel (202 with Location), NOT by recorded traffic (the SDK's tests "
        "cancel only when run live, so no public recording answers a cancel); the harness "
        "sends the documented POST and waits through the poll",
        "stops_at": [],
    },
    {
        "step": "registry_refused",
        "args": {"name": "Phi-4", "version": "1", "registry": REGISTRY},
        "source": "sdk_recordings/registry_discovery_refused.json",
        "proves": "the harness's registry client asks the live discovery endpoint where the "
        "registry lives, and a 403 there (UnAuthorizedRegistryAccess) becomes the harness's "
        "access error naming the registry and the fix, before any model GET",
        "stops_at": [],
    },
    {
        "step": "registry_model",
        "args": {"name": "test_267902544371", "version": "2", "registry": "testFeed"},
        "source": "sdk_recordings/registry_model_get.json",
        "proves": "the harness's foundation-model read of a pinned version: the registry "
        "client's discovery and the raw version GET at the region the discovery answer names "
        "(the SDK's own get_registry_versioned_asset), and the card built from the real body "
        "(its tags; the id the registry gives)",
        "stops_at": [],
    },
    {
        "step": "create_compute",
        "args": {"name": CLUSTER, "size": "Standard_DS2_v2"},
        "source": "sdk_recordings/aml_compute_create_and_delete.json",
        "proves": "the harness's cluster PUT, the computeOperationsStatus polls (InProgress, "
        "Succeeded) and the final GET the harness reads its cluster from. The SDK asks the "
        "workspace's location first (the SDK's own test passed one): that GET is answered by "
        "the workspace GET of online_endpoint_lifecycle.json (same sanitized workspace URL, "
        "same location, eastus)",
        "stops_at": [],
    },
    {
        "step": "existing_compute",
        "args": {"name": CLUSTER},
        "source": "sdk_recordings/aml_compute_create_and_delete.json",
        "proves": "the harness reads a live cluster's GET (size, state) as it is",
        "stops_at": [],
    },
    {
        "step": "delete_compute",
        "args": {"name": CLUSTER},
        "source": "sdk_recordings/aml_compute_create_and_delete.json",
        "proves": "the harness's compute DELETE (underlyingResourceAction=Delete) is the one the "
        "live service answered 202 with Azure-AsyncOperation only",
        "stops_at": [  # the SDK's test did not wait for the deletion; the harness does
            f"GET {OPERATIONS}/computeOperationsStatus/ebd45a6b-06df-4662-8c3c-8e334b437fcf?"
        ],
    },
]


def arm_url(url: str) -> str:
    parts = urlsplit(url)
    host = SANITIZED_HOSTS.get(parts.netloc, parts.netloc)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    kept = urlencode([(k, v) for k, v in query if k not in SIGNING_PARAMS], safe=":")
    return urlunsplit((parts.scheme, host, parts.path, kept, ""))


def _body(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def interaction(entry: dict[str, Any], source: str, seq: int) -> dict[str, Any]:
    """One test-proxy entry as a vcrpy interaction."""
    headers = {
        k: [arm_url(v) if k in URL_HEADERS else v] for k, v in entry["ResponseHeaders"].items()
    }
    body = _body(entry.get("ResponseBody")) or ""
    headers["Content-Length"] = [str(len(body.encode()))]
    status = int(entry["StatusCode"])
    return {
        "request": {
            "method": entry["RequestMethod"],
            "uri": arm_url(entry["RequestUri"]),
            "body": _body(entry.get("RequestBody")),
            "headers": {"Accept": ["application/json"]},
        },
        "response": {
            "status": {"code": status, "message": HTTPStatus(status).phrase},
            "headers": headers,
            "body": {"string": body},
            "harness": {"seq": seq, "at_s": float(seq), "elapsed_s": 0.0, "source": source},
        },
    }


def scrubbed(entry: dict[str, Any], scrubber: Scrubber) -> dict[str, Any]:
    """An interaction through the scrubber ``--record-traffic`` uses: the SDK's test proxy
    sanitized the recordings already, and nothing it missed reaches the repository either."""
    request, response = entry["request"], entry["response"]
    body = response["body"]["string"]
    request = {**request, "uri": scrubber.text(request["uri"])}
    if request["body"] is not None:
        request["body"] = scrubber.body(request["body"].encode()).decode()
    clean = scrubber.body(body.encode()).decode() if body else body
    headers = scrubber.headers(response["headers"])
    headers["Content-Length"] = [str(len(clean.encode()))]
    response = {**response, "headers": headers, "body": {"string": clean}}
    return {"request": request, "response": response}


def _excerpt_names() -> list[str]:
    """Every excerpt the steps name (a step's ``source`` is one path or a list), once each."""
    names = [step["source"] for step in STEPS]
    return list(
        dict.fromkeys(n for name in names for n in ([name] if isinstance(name, str) else name))
    )


def _where(source: dict[str, Any], index: int) -> str:
    kind = f"{source['kind']}, not recorded traffic; " if source.get("kind") else ""
    return f"{source['path']}@{source['commit'][:12]} ({kind}excerpt entry {index})"


def build(excerpts: Path = TOOLS) -> dict[str, Any]:
    """The cassette: each excerpt's entries once, in the order the steps first use them."""
    interactions, sources = [], []
    scrubber = Scrubber()
    for name in _excerpt_names():
        data = json.loads((excerpts / name).read_text(encoding="utf-8"))
        sources.append(data["source"])
        for index, entry in enumerate(data["Entries"]):
            where = _where(data["source"], index)
            interactions.append(scrubbed(interaction(entry, where, len(interactions)), scrubber))
    meta = {
        "format": 1,
        "kind": "steps",
        "source": "the Azure SDK team's public recordings of the live service (real traffic), "
        "and for a job's cancel the REST API spec's example (the documented answer)",
        "sources": sources,
        "run_id": "sdkassets",
        "model_name": None,
        "model_version": None,
        # recorded by azure-ai-ml 1.24 and 1.32: a route's api-version may differ from today's
        "match_api_version": False,
        "settings": {
            "azure_subscription_id": "00000000-0000-0000-0000-000000000",
            "azure_resource_group": "00000",
            "azure_workspace": "00000",
        },
        "steps": STEPS,
        "names": [],
    }
    return {"version": 1, "interactions": interactions, "metadata": {"harness": meta}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="cassette directory")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "sdk-recordings.yaml"
    path.write_text(yaml.safe_dump(build(), sort_keys=False, width=100), encoding="utf-8")
    print(f"wrote {path} from {', '.join(_excerpt_names())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
