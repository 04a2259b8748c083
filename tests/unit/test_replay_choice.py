"""How a replay picks each recorded answer, and how it refuses bad input: a missing or corrupt
cassette, a cassette of another model or run, a request the recording never answered, or one it
has no answers left for. Every refusal names the file or the request, never a traceback."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import requests

from harness import replay
from harness.__main__ import main
from harness.backends.azure.recording import FORMAT, TrafficRecorder

ARM = "https://management.azure.com/subscriptions/s/resourceGroups/g/providers/x/workspaces/w"


def exchange(method: str, url: str, body: str, at: float) -> dict[str, Any]:
    return {
        "request": {"method": method, "uri": url, "body": None, "headers": {}},
        "response": {
            "status": {"code": 200, "message": "OK"},
            "headers": {"Content-Type": ["application/json"], "Retry-After": ["30"]},
            "body": {"string": body},
            "harness": {"seq": int(at), "at_s": at, "elapsed_s": 0.0, "thread": "MainThread"},
        },
    }


def meta(**overrides: Any) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "kind": "run",
        "run_id": "hrun0001",
        "model_name": "Phi-4",
        "model_version": "8",
        **overrides,
    }


def cassette(
    folder: Path, interactions: list[dict[str, Any]], name: str = "a", **over: Any
) -> Path:
    path = folder / f"{name}.yaml"
    TrafficRecorder(path, meta(**over), interactions=interactions).save()
    return folder


def polls(folder: Path) -> replay.Player:
    """A job polled three times (Running, Running, Completed), then MLflow read once."""
    job, metrics = f"{ARM}/jobs/j?api-version=1", f"{ARM}/mlflow/runs/search"
    recorded = [
        exchange("GET", job, '{"status": "Running"}', 1),
        exchange("POST", metrics, '{"runs": ["early"]}', 2),
        exchange("GET", job, '{"status": "Running"}', 3),
        exchange("GET", job, '{"status": "Completed"}', 4),
        exchange("POST", metrics, '{"runs": ["final"]}', 5),
        exchange("PUT", f"{ARM}/onlineEndpoints/e?api-version=1", "{}", 6),
    ]
    return played_from(folder, recorded)


def played_from(folder: Path, recorded: list[dict[str, Any]]) -> replay.Player:
    """A player of ``recorded``, saved as a cassette in ``folder`` and loaded back."""
    return replay.Player(replay.load(cassette(folder, recorded)))


def body(response: dict[str, Any]) -> str:
    return str(response["body"]["string"])


def test_a_poll_asked_less_often_skips_to_the_answers_after_what_its_thread_saw(
    tmp_path: Path,
) -> None:
    player = polls(tmp_path)
    job, metrics = f"{ARM}/jobs/j?api-version=1", f"{ARM}/mlflow/runs/search"
    assert "Running" in body(player.answer("GET", job))
    assert "Running" in body(player.answer("GET", job))
    assert "Completed" in body(player.answer("GET", job))
    # the recorded run read MLflow during the wait too; this replay did not: the final answer
    assert "final" in body(player.answer("POST", metrics))


def test_a_poll_asked_more_often_gets_the_latest_answer_again(tmp_path: Path) -> None:
    player = polls(tmp_path)
    job = f"{ARM}/jobs/j?api-version=1"
    answers = [body(player.answer("GET", job)) for _ in range(5)]
    assert ["Completed" in a for a in answers] == [False, False, True, True, True]


def test_each_thread_keeps_its_own_place_in_the_recording(tmp_path: Path) -> None:
    player = polls(tmp_path)
    job = f"{ARM}/jobs/j?api-version=1"
    for _ in range(3):
        player.answer("GET", job)  # the main thread is past the job's end
    seen: list[str] = []
    thread = threading.Thread(
        target=lambda: seen.append(body(player.answer("POST", f"{ARM}/mlflow/runs/search")))
    )
    thread.start()
    thread.join()
    assert "early" in seen[0], "a new thread starts at the beginning of the recording"


def test_a_thread_whose_copy_another_took_does_not_jump_past_its_own_later_answers(
    tmp_path: Path,
) -> None:
    """Last night thread A read the endpoint (0), submitted and polled the job; thread B read the
    endpoint later (3). Tonight B reads it first: A gets B's copy, and still its job polls."""
    endpoint, job = f"{ARM}/onlineEndpoints/e?api-version=1", f"{ARM}/jobs/j?api-version=1"
    recorded = [
        exchange("GET", endpoint, '{"state": "Creating"}', 0),
        exchange("PUT", job, "{}", 1),
        exchange("GET", job, '{"status": "Running"}', 2),
        exchange("GET", endpoint, '{"state": "Succeeded"}', 3),
        exchange("GET", job, '{"status": "Completed"}', 4),
    ]
    player = played_from(tmp_path, recorded)
    other = threading.Thread(target=lambda: player.answer("GET", endpoint))
    other.start()
    other.join()
    assert "Succeeded" in body(player.answer("GET", endpoint))  # the copy left
    player.answer("PUT", job)
    answers = [body(player.answer("GET", job)) for _ in range(2)]
    assert ["Completed" in a for a in answers] == [False, True], "no poll skipped"
    assert sorted(player.played) == [0, 1, 2, 3, 4]


def test_answers_that_never_change_leave_the_thread_where_it_was(tmp_path: Path) -> None:
    workspace, job = f"{ARM}?api-version=1", f"{ARM}/jobs/j?api-version=1"
    recorded = [
        exchange("GET", workspace, '{"name": "w"}', 0),
        exchange("GET", job, '{"status": "Running"}', 1),
        exchange("GET", workspace, '{"name": "w"}', 2),
        exchange("GET", job, '{"status": "Completed"}', 3),
    ]
    player = played_from(tmp_path, recorded)
    player.answer("GET", workspace)
    player.answer("GET", workspace)  # the second copy, recorded after the first poll
    assert "Running" in body(player.answer("GET", job))
    assert "Completed" in body(player.answer("GET", job))


def test_a_replay_never_waits_for_a_recorded_retry_after(tmp_path: Path) -> None:
    player = polls(tmp_path)
    headers = player.answer("GET", f"{ARM}/jobs/j?api-version=1")["headers"]
    assert "Retry-After" not in headers and headers["retry-after-ms"] == ["1"]


def test_running_out_of_answers_names_the_request_and_its_recorded_twin(tmp_path: Path) -> None:
    player = polls(tmp_path)
    url = f"{ARM}/onlineEndpoints/e?api-version=1"
    player.answer("PUT", url)
    with pytest.raises(replay.ReplayError) as refused:
        player.answer("PUT", url)
    assert f"no recorded answer for PUT {url}" in str(refused.value)
    assert "all 1 recorded answers to it were already played" in str(refused.value)
    assert player.first_unanswered is not None and player.first_unanswered.url == url


def test_a_request_never_recorded_names_the_nearest_recorded_one(tmp_path: Path) -> None:
    player = polls(tmp_path)
    with pytest.raises(replay.ReplayError) as refused:
        player.answer("PUT", f"{ARM}/onlineEndpoints/f?api-version=1")
    message = str(refused.value)
    assert "the recording never sent it" in message
    assert (
        f"nearest recorded request: PUT {ARM}/onlineEndpoints/e?api-version=1 (a.yaml#5)" in message
    )


def test_vcrpy_answers_a_real_requests_call_offline(tmp_path: Path) -> None:
    """The whole path: requests -> urllib3 -> vcrpy's patched connection -> the player."""
    player = polls(tmp_path)
    with replay.playing(player):
        reply = requests.get(f"{ARM}/jobs/j?api-version=1", timeout=5)
        with pytest.raises(replay.ReplayError, match="the recording never sent it"):
            requests.get(f"{ARM}/jobs/other", timeout=5)
    assert reply.status_code == 200 and reply.json() == {"status": "Running"}


def test_a_connection_opened_while_another_thread_builds_one_is_still_played(
    tmp_path: Path,
) -> None:
    """vcrpy puts the real connection classes back for every thread while it builds a
    connection; a second thread (the SDK's pollers run beside the main thread) that opened a
    connection meanwhile got a real one and went to the network. Now it waits its turn."""
    import vcr.patch
    from urllib3 import HTTPSConnectionPool

    building, release = threading.Event(), threading.Event()

    def builds_slowly() -> None:
        with vcr.patch.force_reset():  # what VCRConnection.__init__ does
            building.set()
            release.wait(5)

    with replay.playing(polls(tmp_path)):
        poller = threading.Thread(target=builds_slowly)
        poller.start()
        building.wait(5)
        threading.Timer(0.2, release.set).start()
        connection = HTTPSConnectionPool("management.azure.com")._new_conn()
        poller.join(5)
    assert type(connection).__module__.startswith("vcr"), type(connection)
    after = HTTPSConnectionPool("management.azure.com")._new_conn()
    assert not type(after).__module__.startswith("vcr")  # and nothing stays patched


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ("interactions: [unclosed", "is not a readable vcrpy cassette"),
        ("just text\n", "is not a readable vcrpy cassette"),
        ("version: 1\ninteractions: []\n", "has no harness metadata"),
    ],
)
def test_a_corrupt_cassette_is_named(tmp_path: Path, content: str, said: str) -> None:
    (tmp_path / "broken.yaml").write_text(content)
    with pytest.raises(replay.ReplayError, match=f"broken.yaml {said}"):
        replay.load(tmp_path)


def test_a_cassette_of_another_format_is_refused(tmp_path: Path) -> None:
    cassette(tmp_path, [], format=99)
    with pytest.raises(
        replay.ReplayError, match=r"a\.yaml has format 99; this harness reads format 1"
    ):
        replay.load(tmp_path)


def test_a_cassette_of_another_model_or_version_is_refused(tmp_path: Path) -> None:
    cassette(tmp_path, [])
    with pytest.raises(
        replay.ReplayError, match=r"a\.yaml recorded model Phi-4 version 8, not Phi-4 version 9"
    ):
        replay.load(tmp_path, model_version="9")
    with pytest.raises(replay.ReplayError, match="not Llama version 8"):
        replay.load(tmp_path, model_name="Llama")


def test_cassettes_of_two_runs_in_one_directory_are_refused(tmp_path: Path) -> None:
    cassette(tmp_path, [], name="a")
    cassette(tmp_path, [], name="b", run_id="hother001")
    with pytest.raises(replay.ReplayError, match=r"a\.yaml and .*b\.yaml are of different runs"):
        replay.load(tmp_path)


def test_the_command_refuses_a_missing_or_empty_directory_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "nowhere does not exist; pass the directory --record-traffic wrote" in err
    assert "Traceback" not in err
    assert main(["replay", str(tmp_path)]) == 2
    assert "holds no *.yaml cassette" in capsys.readouterr().err


def test_the_command_refuses_a_cassette_of_steps(capsys: pytest.CaptureFixture[str]) -> None:
    steps = Path(__file__).resolve().parents[1] / "cassettes" / "azure-sdk-assets"
    assert main(["replay", str(steps)]) == 2
    assert "'steps' recordings" in capsys.readouterr().err
