"""Request validation and the chunk aggregator, on values alone (no server)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rawstream.llm.aggregate import CompletionBuilder
from rawstream.llm.protocol import MAX_MESSAGES, APIError, Message, parse_chat_request

USER = {"role": "user", "content": "hi"}


def parse(body: Any) -> Any:
    return parse_chat_request(json.dumps(body).encode())


def test_a_minimal_request() -> None:
    """model and messages are enough: no stream, no usage chunk, no limit, one choice."""
    chat = parse({"model": "m", "messages": [USER]})
    assert (chat.model, chat.messages, chat.stream, chat.include_usage) == (
        "m",
        (Message("user", "hi"),),
        False,
        False,
    )
    assert (chat.max_tokens, chat.n) == (None, 1)


def test_content_parts_are_joined_and_unknown_fields_kept() -> None:
    """Text parts join with newlines; other parts are skipped; unknown fields stay in body."""
    content = [
        {"type": "text", "text": "one"},
        {"type": "image_url", "image_url": {"url": "data:,"}},
        {"type": "text", "text": "two"},
    ]
    chat = parse({"model": "m", "messages": [{"role": "user", "content": content}], "seed": 7})
    assert chat.messages == (Message("user", "one\ntwo"),)
    assert chat.body["seed"] == 7


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    """The current name takes precedence over the deprecated one."""
    chat = parse({"model": "m", "messages": [USER], "max_tokens": 9, "max_completion_tokens": 3})
    assert chat.max_tokens == 3


def test_a_tool_calling_assistant_message_needs_no_content() -> None:
    """An assistant message with tool_calls and null content is valid."""
    message = {"role": "assistant", "content": None, "tool_calls": []}
    assert parse({"model": "m", "messages": [USER, message]}).messages[1] == Message(
        "assistant", ""
    )


@pytest.mark.parametrize(
    ("body", "param", "says"),
    [
        (b"{not json", None, "parse the JSON"),
        (b"\xff\xfe", None, "parse the JSON"),
        ([USER], None, "JSON object"),
        ({"messages": [USER]}, "model", "model"),
        ({"model": "", "messages": [USER]}, "model", "model"),
        ({"model": "m"}, "messages", "Missing required parameter: 'messages'"),
        ({"model": "m", "messages": []}, "messages", "non-empty"),
        ({"model": "m", "messages": "hi"}, "messages", "non-empty"),
        ({"model": "m", "messages": [USER] * (MAX_MESSAGES + 1)}, "messages", "at most"),
        ({"model": "m", "messages": ["hi"]}, "messages[0]", "object"),
        (
            {"model": "m", "messages": [{"role": "wizard", "content": "x"}]},
            "messages[0].role",
            "wizard",
        ),
        ({"model": "m", "messages": [{"content": "x"}]}, "messages[0].role", "None"),
        ({"model": "m", "messages": [{"role": "user"}]}, "messages[0].content", "content"),
        (
            {"model": "m", "messages": [{"role": "user", "content": 5}]},
            "messages[0].content",
            "string",
        ),
        (
            {"model": "m", "messages": [{"role": "user", "content": [{"type": "text"}]}]},
            "messages[0].content[0].text",
            "text",
        ),
        (
            {"model": "m", "messages": [{"role": "user", "content": [3]}]},
            "messages[0].content[0]",
            "type",
        ),
        ({"model": "m", "messages": [USER], "stream": "yes"}, "stream", "boolean"),
        ({"model": "m", "messages": [USER], "stream_options": 1}, "stream_options", "object"),
        (
            {"model": "m", "messages": [USER], "stream_options": {"include_usage": 1}},
            "stream_options.include_usage",
            "boolean",
        ),
        ({"model": "m", "messages": [USER], "max_tokens": 0}, "max_tokens", "at least 1"),
        ({"model": "m", "messages": [USER], "max_tokens": True}, "max_tokens", "integer"),
        (
            {"model": "m", "messages": [USER], "max_completion_tokens": 1.5},
            "max_completion_tokens",
            "integer",
        ),
        ({"model": "m", "messages": [USER], "n": -1}, "n", "integer"),
    ],
)
def test_invalid_requests_name_the_field(body: Any, param: str | None, says: str) -> None:
    """Each malformed request raises a 400 naming the field at fault."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(APIError) as caught:
        parse_chat_request(raw)
    error = caught.value.body()["error"]
    assert caught.value.status == 400
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert says in error["message"]


def chunk(delta: dict[str, Any], finish: str | None = None, index: int = 0) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 5,
        "model": "up",
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
    }


def test_chunks_fold_into_a_completion() -> None:
    """Content deltas concatenate per choice; finish reasons and usage are kept."""
    builder = CompletionBuilder()
    for piece in (
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hel"}),
        chunk({"role": "assistant", "content": "Other"}, index=1),
        chunk({"content": "lo"}),
        chunk({}, "stop"),
        chunk({}, "length", index=1),
        {"id": "chatcmpl-1", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}},
    ):
        builder.add(piece)
    result = builder.result()
    assert result["id"] == "chatcmpl-1"
    assert result["object"] == "chat.completion"
    assert [
        (c["index"], c["message"]["content"], c["finish_reason"]) for c in result["choices"]
    ] == [
        (0, "Hello", "stop"),
        (1, "Other", "length"),
    ]
    assert result["usage"] == {"prompt_tokens": 1, "completion_tokens": 2}


def test_tool_call_pieces_fold_by_index() -> None:
    """Tool call arguments arrive in pieces and are joined; content stays null."""
    builder = CompletionBuilder()
    call = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "f", "arguments": ""},
    }
    builder.add(chunk({"role": "assistant", "tool_calls": [call]}))
    builder.add(chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}))
    builder.add(
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}, "tool_calls")
    )
    message = builder.result()["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
    ]


def test_an_error_object_is_not_a_chunk() -> None:
    """An upstream error in the stream is refused, not folded into an empty answer."""
    with pytest.raises(ValueError, match="not a completion chunk"):
        CompletionBuilder().add({"error": {"message": "overloaded"}})
