"""``rawstream demo`` as users start it: the built-in model, and ``--upstream`` relaying to it.

Two real processes; the synchronous ``openai`` client talks to them from a plain test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support.cli import start_cli, stop_process

from rawstream.llm.generator import MODEL_ID, answer
from rawstream.llm.protocol import Message


@pytest.fixture
def demo_port() -> Iterator[int]:
    """``rawstream demo --token-rate 0``: the built-in model, unpaced."""
    process, port = start_cli("demo", "--token-rate", "0")
    try:
        yield port
    finally:
        stop_process(process)


def test_demo_relays_to_another_demo(demo_port: int, openai_client: Callable[[str], Any]) -> None:
    """openai -> ``demo --upstream`` -> ``demo``: the built-in answer, streamed and not."""
    upstream = f"http://127.0.0.1:{demo_port}/v1"
    relay, relay_port = start_cli("demo", "--upstream", upstream)
    try:
        client = openai_client(f"http://127.0.0.1:{relay_port}/v1")
        messages = [{"role": "user", "content": "through two servers"}]
        expected = answer([Message("user", "through two servers")])
        with client.chat.completions.create(
            model=MODEL_ID, messages=messages, stream=True
        ) as stream:
            streamed = "".join(c.choices[0].delta.content or "" for c in stream)
        whole = client.chat.completions.create(model=MODEL_ID, messages=messages)
    finally:
        stop_process(relay)
    assert streamed == expected
    assert whole.choices[0].message.content == expected


def test_demo_serves_the_built_in_model(
    demo_port: int, openai_client: Callable[[str], Any]
) -> None:
    """``rawstream demo`` answers chat completions and lists its model."""
    client = openai_client(f"http://127.0.0.1:{demo_port}/v1")
    assert [m.id for m in client.models.list()] == [MODEL_ID]
    completion = client.chat.completions.create(
        model=MODEL_ID, messages=[{"role": "user", "content": "hello"}]
    )
    assert completion.choices[0].message.content.startswith("You said: “hello”.")


@pytest.mark.parametrize(
    ("options", "env", "says"),
    [
        (["--token-rate", "-1"], {}, "--token-rate must be 0 or more"),
        (["--token-rate", "nan"], {}, "--token-rate must be 0 or more"),
        (["--upstream", "ftp://x"], {}, "--upstream: the upstream must be an http"),
        (["--upstream", "http://h:99999/v1"], {}, "--upstream: the upstream is not a valid URL"),
        (
            ["--upstream", "http://127.0.0.1:9/v1"],
            {"RAWSTREAM_UPSTREAM_API_KEY": "sk-a\nb"},
            "API key cannot be sent",
        ),
    ],
)
def test_bad_demo_options_are_usage_errors(
    options: list[str],
    env: dict[str, str],
    says: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A usage error (exit status 2, one line on stderr), not a traceback; nothing starts."""
    from rawstream.cli import main

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        main(["demo", "--port", "0", *options])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
