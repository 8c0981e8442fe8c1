"""Fold a stream of ``chat.completion.chunk`` objects into one ``chat.completion``.

The relay asks its upstream for a stream even when its own client wants one JSON answer, so
that the downstream client's departure can cancel the upstream request at any point (see
:mod:`rawstream.llm.relay`); this module turns the chunks back into what ``stream: false``
would have answered.

Per choice ``index``, deltas concatenate: ``content`` and ``refusal`` text, and
``tool_calls`` by their own ``index`` (``id``, ``type`` and ``function.name`` arrive once,
``function.arguments`` in pieces).  The last ``finish_reason`` wins; ``usage`` comes from the
usage chunk the relay asks for (``stream_options.include_usage``).

The chunks come from another server: a value of the wrong type where the folding looks
inside (a choice ``index`` that is a list, a ``delta`` that is a string...) raises
``ValueError``, which the relay answers like any broken upstream stream.  Values it only
copies (ids, names, ``usage``) are passed on as they came.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["CompletionBuilder"]


@dataclass
class _Choice:
    role: str = "assistant"
    content: list[str] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    tool_calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    finish_reason: str | None = None

    def add(self, delta: dict[str, Any]) -> None:
        """Take one ``delta`` (a dict, checked by the caller).

        Raises:
            ValueError: ``tool_calls`` is not a list of objects, or one is malformed.
        """
        if isinstance(delta.get("role"), str):
            self.role = delta["role"]
        if isinstance(delta.get("content"), str):
            self.content.append(delta["content"])
        if isinstance(delta.get("refusal"), str):
            self.refusal.append(delta["refusal"])
        for call in _objects(delta.get("tool_calls"), "tool_calls", "a tool call"):
            self._add_tool_call(call)

    def _add_tool_call(self, piece: dict[str, Any]) -> None:
        index = _index(piece)
        call = self.tool_calls.setdefault(index, {"id": "", "type": "function", "function": {}})
        for key in ("id", "type"):
            if piece.get(key):
                call[key] = piece[key]
        function = piece.get("function") or {}
        if not isinstance(function, dict):
            raise _invalid(f"tool call function is not an object: {function!r}")
        if function.get("name"):
            call["function"]["name"] = function["name"]
        if isinstance(function.get("arguments"), str):
            call["function"]["arguments"] = (
                call["function"].get("arguments", "") + function["arguments"]
            )

    def message(self) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": self.role,
            "content": "".join(self.content) if self.content or not self.tool_calls else None,
            "refusal": "".join(self.refusal) if self.refusal else None,
        }
        if self.tool_calls:
            message["tool_calls"] = [self.tool_calls[i] for i in sorted(self.tool_calls)]
        return message


class CompletionBuilder:
    """Accumulates chunks (:meth:`add`), then gives the completion (:meth:`result`)."""

    def __init__(self) -> None:
        self._head: dict[str, Any] = {}
        self._choices: dict[int, _Choice] = {}
        self._usage: dict[str, Any] | None = None

    def add(self, chunk: dict[str, Any]) -> None:
        """Take one ``chat.completion.chunk``.

        Raises:
            ValueError: ``chunk`` is not a chunk object (an upstream error object, say).
        """
        if not isinstance(chunk, dict) or "error" in chunk:
            raise _invalid(f"not a completion chunk: {chunk!r}")
        for key in ("id", "created", "model", "system_fingerprint", "service_tier"):
            if chunk.get(key) is not None:
                self._head.setdefault(key, chunk[key])
        for choice in _objects(chunk.get("choices"), "choices", "a choice"):
            delta = choice.get("delta") or {}
            finish_reason = choice.get("finish_reason")
            if not isinstance(delta, dict):
                raise _invalid(f"delta is not an object: {delta!r}")
            if finish_reason is not None and not isinstance(finish_reason, str):
                raise _invalid(f"finish_reason is not a string: {finish_reason!r}")
            state = self._choices.setdefault(_index(choice), _Choice())
            state.add(delta)
            if finish_reason is not None:
                state.finish_reason = finish_reason
        if chunk.get("usage") is not None:
            self._usage = chunk["usage"]

    def result(self) -> dict[str, Any]:
        """The ``chat.completion`` the chunks add up to."""
        completion: dict[str, Any] = {
            "id": self._head.get("id", ""),
            "object": "chat.completion",
            "created": self._head.get("created", 0),
            "model": self._head.get("model", ""),
            "choices": [
                {
                    "index": index,
                    "message": self._choices[index].message(),
                    "logprobs": None,
                    "finish_reason": self._choices[index].finish_reason,
                }
                for index in sorted(self._choices)
            ],
        }
        for key in ("system_fingerprint", "service_tier"):
            if key in self._head:
                completion[key] = self._head[key]
        if self._usage is not None:
            completion["usage"] = self._usage
        return completion


def _index(value: dict[str, Any]) -> int:
    """The ``index`` of a choice or a tool call piece (0 if absent): a non-negative integer.

    Raises:
        ValueError: anything else (a list is not even hashable).
    """
    index = value.get("index", 0)
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise _invalid(f"index is not a non-negative integer: {index!r}")
    return index


def _objects(value: Any, list_name: str, item_name: str) -> list[dict[str, Any]]:
    """``value`` (None: empty) as a list of objects.

    Raises:
        ValueError: it is not a list, or an item is not an object.
    """
    items = value or []
    if not isinstance(items, list):
        raise _invalid(f"{list_name} is not a list: {items!r}")
    for item in items:
        if not isinstance(item, dict):
            raise _invalid(f"not {item_name}: {item!r}")
    return items


def _invalid(message: str) -> ValueError:
    """The error for malformed upstream JSON, its message cut to 500 characters (it quotes
    the upstream's data)."""
    return ValueError(message[:500])
