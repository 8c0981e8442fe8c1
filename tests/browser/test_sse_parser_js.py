"""The page's own SSE parser (``SSEParser`` in app.js, used by the LLM pane), run in chromium:
line ends of every kind, and a stream cut into reads at every possible place."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .conftest import DemoProcess

#: CRLF, CR and LF line ends (a CRLF cut in two must not read as two line ends), a field
#: without a space, a comment, an empty event, multi-line data, an id, non-ASCII text, and
#: the [DONE] sentinel of chat completions.
STREAM = (
    "data: a\r\ndata: a2\r\n\r\n"
    "event: x\rdata: b\r\r"
    "id: 7\ndata:c\ndata:  d\n\n"
    ": keepalive\n\n"
    "event: ignored\n\n"
    "data: “é”\r\n\r\n"
    "data: [DONE]\r\n\r\n"
)
EXPECTED = [
    {"type": "message", "data": "a\na2", "id": ""},
    {"type": "x", "data": "b", "id": ""},
    {"type": "message", "data": "c\n d", "id": "7"},
    {"type": "message", "data": "“é”", "id": "7"},
    {"type": "message", "data": "[DONE]", "id": "7"},
]

#: Feed the pieces to a new SSEParser; return the events it dispatched.
PARSE = """([pieces]) => {
  const events = [];
  const parser = new SSEParser((event) => events.push(event));
  for (const piece of pieces) parser.push(piece);
  return events;
}"""


def test_parser_handles_every_line_end_and_every_cut(
    start_demo: Callable[..., DemoProcess], new_page: Callable[..., Any]
) -> None:
    """The same events whether the stream comes whole, one character a read, or cut in two
    at any place (a CRLF split between two reads included)."""
    demo = start_demo()
    page = new_page(demo.url)
    assert page.evaluate(PARSE, [[STREAM]]) == EXPECTED
    assert page.evaluate(PARSE, [list(STREAM)]) == EXPECTED
    cuts = [[STREAM[:cut], "", STREAM[cut:]] for cut in range(1, len(STREAM))]
    results = page.evaluate(f"(cuts) => cuts.map((pieces) => ({PARSE})([pieces]))", cuts)
    for cut, events in enumerate(results, start=1):
        assert events == EXPECTED, f"cut after {STREAM[:cut]!r}"


def test_parser_refuses_an_endless_line(
    start_demo: Callable[..., DemoProcess], new_page: Callable[..., Any]
) -> None:
    """A line that never ends is an error past 1 MiB, not a buffer that grows forever."""
    demo = start_demo()
    page = new_page(demo.url)
    message = page.evaluate(
        """() => {
          const parser = new SSEParser(() => {});
          try {
            for (let i = 0; i < 20; i++) parser.push("x".repeat(64 * 1024));
          } catch (error) {
            return error.message;
          }
          return "no error";
        }"""
    )
    assert message == "an SSE line is too long"


def test_parser_refuses_an_endless_event(
    start_demo: Callable[..., DemoProcess], new_page: Callable[..., Any]
) -> None:
    """Many short ``data:`` lines that never end the event: an error once their data passes
    1 MiB, not a buffer that grows forever; just under the limit, the event is dispatched
    (the bound counts the newlines that join the lines)."""
    demo = start_demo()
    page = new_page(demo.url)
    outcome = page.evaluate(
        """() => {
          const line = "data: " + "x".repeat(1023) + "\\n";  // 1023 + 1 joining newline
          const events = [];
          const fits = new SSEParser((event) => events.push(event));
          for (let i = 0; i < 1024; i++) fits.push(line);  // 1024 * 1024 - 1 characters
          fits.push("\\n");
          const endless = new SSEParser(() => {});
          let error = "no error";
          try {
            for (let i = 0; i < 4096; i++) endless.push(line);
          } catch (caught) {
            error = caught.message;
          }
          return { error, sizes: events.map((event) => event.data.length) };
        }"""
    )
    assert outcome == {"error": "an SSE event is too large", "sizes": [1024 * 1024 - 1]}
