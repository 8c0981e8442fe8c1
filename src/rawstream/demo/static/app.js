// rawstream demo page: four panes, each a few small functions over one browser streaming API.
//
//   ticker  EventSource on /events?channel=ticker       (reconnects and resumes by itself)
//   chat    WebSocket on /ws/chat                       (we reconnect, resuming from the last id)
//   llm     fetch POST /v1/chat/completions, read through a ReadableStream, AbortController
//   task    POST /tasks, then EventSource on the task's channel
//
// Everything received is shown with textContent or text nodes, never innerHTML: chat text and
// model output come from other people and must not become markup.
"use strict";

// -- small helpers ---------------------------------------------------------------------------

const $ = (id) => document.getElementById(id);

/** An element with a class and text (as text, never HTML). */
function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Show a pane's connection state in its badge (the text for people, data-state for CSS and
 *  tests). */
function setBadge(pane, state, text = state) {
  const badge = pane.querySelector(".badge");
  badge.dataset.state = state;
  badge.textContent = text;
}

/** Drop the oldest entries of a log so a page left open all day keeps a bounded DOM. */
function trimLog(list, keep, oldestIsLast) {
  while (list.children.length > keep) {
    (oldestIsLast ? list.lastElementChild : list.firstElementChild).remove();
  }
}

/** Keep a log scrolled to its end, unless the reader scrolled up to read something. */
function appendToLog(list, node) {
  const atEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.append(node);
  if (atEnd) list.scrollTop = list.scrollHeight;
}

/** Reconnection delay: exponential, capped, with jitter so that many pages a restarted server
 *  dropped at once do not all come back in the same instant. */
function backoff(attempt, firstMs = 500, maxMs = 10000) {
  const ceiling = Math.min(maxMs, firstMs * 2 ** attempt);
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

const clock = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit", minute: "2-digit", second: "2-digit",
});

/** A Unix time in seconds as a clock time, or "" for anything else (Intl throws a
 *  RangeError on a date out of range, and the data comes from whoever published it). */
function formatTime(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "";
  try {
    return clock.format(seconds * 1000);
  } catch {
    return "";
  }
}

/** JSON.parse that answers `undefined` instead of throwing: anyone may publish anything to a
 *  channel (POST /publish), so a payload is not trusted to be the JSON a pane expects. */
function parseJSON(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Whether `value` is a plain JSON object (not null, not an array). */
function isObject(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

// -- ticker: EventSource ---------------------------------------------------------------------

const TICKER_URL = "/events?channel=ticker";
const TICKER_KEEP = 500;

function startTicker() {
  const pane = $("ticker");
  const list = $("ticker-list");
  const seen = { count: 0, reconnects: 0, opened: false, lastId: "", attempt: 0 };
  let source = null;

  function connect() {
    // The browser resends Last-Event-ID itself when *it* reconnects; a new EventSource (made
    // below, after the browser gave up) cannot set headers, so the id goes in the query.
    const url = seen.lastId
      ? `${TICKER_URL}&last_event_id=${encodeURIComponent(seen.lastId)}`
      : TICKER_URL;
    source = new EventSource(url);
    source.addEventListener("open", onOpen);
    source.addEventListener("error", onError);
    source.addEventListener("tick", onTick);
    source.addEventListener("message", onTick); // an event published with no type
    source.addEventListener("reset", onReset);
  }

  function onOpen() {
    if (seen.opened) {
      // Back after a drop: say so in the list, so that a restarted server's "tick 1, 2"
      // below the old process's ticks reads as what it is.
      seen.reconnects += 1;
      $("ticker-reconnects").textContent = String(seen.reconnects);
      const when = formatTime(Date.now() / 1000);
      list.prepend(element("li", "note reconnected", `reconnected at ${when}`));
      trimLog(list, TICKER_KEEP, true);
    }
    seen.opened = true;
    seen.attempt = 0;
    setBadge(pane, "live");
  }

  function onError() {
    setBadge(pane, "reconnecting");
    if (source.readyState === EventSource.CLOSED) {
      // The server answered with an error status (503 while its broker is down, say): the
      // browser does not retry that, so we do, later each time until a stream opens.
      source.close();
      setTimeout(connect, backoff(seen.attempt, 1000));
      seen.attempt += 1;
    }
    // Otherwise (readyState CONNECTING) the browser is already retrying after `retry:` ms.
  }

  function onTick(event) {
    seen.lastId = event.lastEventId;
    seen.count += 1;
    // A tick is {"tick": N, "time": T}; anything else (anyone can publish to the channel)
    // is shown as the raw text it is.
    const tick = parseJSON(event.data);
    const valid = isObject(tick) && Number.isSafeInteger(tick.tick);
    const item = element("li", valid ? "" : "raw");
    item.dataset.id = event.lastEventId; // read by the browser tests: what arrived, in order
    item.append(
      element("span", "tick", valid ? `tick ${tick.tick}` : event.data),
      element("span", "time", valid ? formatTime(tick.time) : ""),
      element("span", "event-id", event.lastEventId),
    );
    list.prepend(item); // newest first
    trimLog(list, TICKER_KEEP, true);
    $("ticker-count").textContent = String(seen.count);
    $("ticker-last-id").textContent = event.lastEventId || "none";
  }

  function onReset(event) {
    // The server could not resume from our id (too old, or unknown to it): say so, since
    // ticks may be missing between this line and the one below it.
    const data = parseJSON(event.data);
    const reason = isObject(data) && typeof data.reason === "string" ? data.reason : "unknown";
    seen.lastId = event.lastEventId || seen.lastId;
    list.prepend(element("li", "note reset", `history reset (${reason}): ticks may be missing`));
    trimLog(list, TICKER_KEEP, true);
  }

  connect();
}

// -- chat: WebSocket -------------------------------------------------------------------------

const CHAT_ROOM = "lobby";
const CHAT_KEEP = 300;

function startChat() {
  const pane = $("chat");
  const log = $("chat-log");
  const text = $("chat-text");
  const send = $("chat-send-button");
  const chat = { ws: null, name: "", lastId: "", attempt: 0, timer: null };

  $("chat-name").value = `guest-${Math.floor(1000 + Math.random() * 9000)}`;

  function wsUrl() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const query = new URLSearchParams({ room: CHAT_ROOM, name: chat.name });
    // Resuming from the last id we saw replays what was said while we were away, and
    // nothing twice.
    if (chat.lastId) query.set("last_event_id", chat.lastId);
    return `${scheme}//${location.host}/ws/chat?${query}`;
  }

  function connect() {
    clearTimeout(chat.timer);
    setBadge(pane, chat.attempt ? "reconnecting" : "connecting");
    const ws = new WebSocket(wsUrl());
    chat.ws = ws;
    ws.addEventListener("message", (event) => {
      const envelope = parseJSON(event.data);
      if (ws === chat.ws && isObject(envelope)) onEnvelope(envelope);
    });
    ws.addEventListener("close", () => {
      if (ws === chat.ws) onClose();
    });
  }

  function setConnected(connected) {
    text.disabled = !connected;
    send.disabled = !connected;
  }

  function setPresence(members) {
    $("chat-presence").textContent = `${members} here`;
    $("chat-presence").dataset.members = String(members);
  }

  function onEnvelope(envelope) {
    if (envelope.id) chat.lastId = envelope.id;
    switch (envelope.type) {
      case "welcome":
        chat.attempt = 0;
        setBadge(pane, "live", `live as ${chat.name}`);
        setConnected(true);
        setPresence(envelope.members);
        break;
      case "message":
        onRoomMessage(envelope);
        break;
      case "reset":
        addToLog(element("li", "note", "history reset: some messages may be missing"));
        break;
      default:
        break; // a type this page does not know: ignore it
    }
  }

  function onRoomMessage(envelope) {
    // The room's channel takes anything published to it (POST /publish?channel=room:lobby):
    // a message that is not {"user", "text"} is shown as its raw text.
    const data = parseJSON(envelope.data);
    if (envelope.event === "presence") {
      if (isObject(data) && Number.isSafeInteger(data.members)) setPresence(data.members);
      return;
    }
    const valid = isObject(data) && typeof data.user === "string" && typeof data.text === "string";
    const item = element("li", valid ? (data.user === chat.name ? "mine" : "") : "raw");
    item.dataset.id = envelope.id ?? "";
    const raw = typeof envelope.data === "string" ? envelope.data : JSON.stringify(envelope.data);
    item.append(
      element("span", "user", valid ? data.user : "(raw)"),
      element("span", "text", valid ? data.text : raw ?? ""),
    );
    addToLog(item);
  }

  function addToLog(node) {
    appendToLog(log, node);
    trimLog(log, CHAT_KEEP, false);
  }

  function onClose() {
    // Dropped (a server restart says 1001): come back after a while, resuming from lastId.
    setConnected(false);
    setBadge(pane, "reconnecting");
    chat.timer = setTimeout(connect, backoff(chat.attempt));
    chat.attempt += 1;
  }

  $("chat-join").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = $("chat-name").value.trim();
    if (!name) return;
    chat.name = name;
    const old = chat.ws;
    chat.ws = null; // its close event is no longer ours to handle
    if (old) old.close(1000, "renamed");
    chat.attempt = 0;
    $("chat-join-button").textContent = "Rename";
    connect();
  });

  $("chat-send").addEventListener("submit", (event) => {
    event.preventDefault();
    if (!text.value || !chat.ws || chat.ws.readyState !== WebSocket.OPEN) return;
    chat.ws.send(text.value); // it comes back through the room like everyone else's
    text.value = "";
    text.focus();
  });
}

// -- Server-Sent Events over fetch: an incremental parser ------------------------------------

const SSE_MAX_LINE = 1 << 20; // a line longer than this is an error, not an unbounded buffer
const SSE_MAX_EVENT = 1 << 20; // so is an event's data, however many `data:` lines it spans

/** WHATWG SSE parsing, fed text as it arrives: lines end with CR, LF or CRLF (a CRLF may be
 *  split between two reads), an event ends at a blank line, comments start with ":".
 *  EventSource does this itself; a POST needs fetch, and fetch needs this. */
class SSEParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = "";
    this.skipLF = false; // the last read ended with CR: an LF opening the next is its pair
    this.data = [];
    this.dataLength = 0; // characters in this.data, newlines between them included
    this.type = "";
    this.id = "";
  }

  push(text) {
    if (!text) return;
    if (this.skipLF && text[0] === "\n") text = text.slice(1);
    this.skipLF = false;
    this.buffer += text;
    const lineEnd = /\r\n|\r|\n/g;
    let start = 0;
    let match;
    while ((match = lineEnd.exec(this.buffer)) !== null) {
      const line = this.buffer.slice(start, match.index);
      start = lineEnd.lastIndex;
      if (match[0] === "\r" && start === this.buffer.length) this.skipLF = true;
      this.line(line);
    }
    this.buffer = this.buffer.slice(start);
    if (this.buffer.length > SSE_MAX_LINE) throw new Error("an SSE line is too long");
  }

  line(line) {
    if (line === "") return this.dispatch();
    if (line.startsWith(":")) return; // a comment (keepalive)
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") {
      this.dataLength += value.length + (this.data.length ? 1 : 0);
      if (this.dataLength > SSE_MAX_EVENT) throw new Error("an SSE event is too large");
      this.data.push(value);
    } else if (field === "event") this.type = value;
    else if (field === "id" && !value.includes("\0")) this.id = value;
    // "retry" and unknown fields mean nothing to a single request.
  }

  dispatch() {
    const data = this.data;
    const type = this.type || "message";
    this.data = [];
    this.dataLength = 0;
    this.type = "";
    if (data.length) this.onEvent({ type, data: data.join("\n"), id: this.id });
  }
}

// -- LLM chat: fetch + ReadableStream + AbortController --------------------------------------

const LLM_URL = "/v1/chat/completions";
const LLM_KEEP_MESSAGES = 20; // the conversation kept, and sent back each turn, bounded
const LLM_KEEP_NODES = 40; // turns (questions, answers, errors) the log shows at most

/** POST a streaming completion and call onToken with each piece of text as it arrives.
 *  Resolves when the model says [DONE]; rejects with an AbortError when `signal` aborts. */
async function streamCompletion({ model, messages, signal, onToken }) {
  const response = await fetch(LLM_URL, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "text/event-stream" },
    body: JSON.stringify({ model, messages, stream: true }),
    signal,
  });
  if (!response.ok) throw new Error(await errorText(response));
  const reader = response.body.getReader();
  // stream: true keeps a UTF-8 character split between two reads for the next decode.
  const decoder = new TextDecoder();
  let finished = false;
  const parser = new SSEParser((event) => {
    if (event.data === "[DONE]") {
      finished = true;
      return;
    }
    const chunk = JSON.parse(event.data);
    if (chunk.error) throw new Error(chunk.error.message || "the model failed");
    const token = chunk.choices?.[0]?.delta?.content;
    if (token) onToken(token);
  });
  try {
    while (!finished) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.push(decoder.decode(value, { stream: true }));
    }
  } finally {
    reader.cancel().catch(() => {}); // frees the connection if we leave early (an error)
  }
  if (!finished) throw new Error("the stream ended before [DONE]");
}

/** The message of an OpenAI-style error body ({"error": {"message": ...}}), or the status. */
async function errorText(response) {
  try {
    const body = await response.json();
    return body.error?.message || `HTTP ${response.status}`;
  } catch {
    return `HTTP ${response.status}`;
  }
}

/** Offer the models GET /v1/models lists (the built-in one, or the upstream's when the
 *  demo relays), and pick the first if the field's default is not among them. */
async function loadModels() {
  try {
    const response = await fetch("/v1/models");
    if (!response.ok) return;
    const ids = (await response.json()).data.map((model) => model.id);
    $("llm-models").replaceChildren(...ids.map((id) => {
      const option = element("option");
      option.value = id;
      return option;
    }));
    if (ids.length && !ids.includes($("llm-model").value)) $("llm-model").value = ids[0];
  } catch {
    // No list: the field keeps its default, and a wrong model gets the server's own error.
  }
}

function startLLM() {
  const pane = $("llm");
  const log = $("llm-log");
  const prompt = $("llm-prompt");
  const sendButton = $("llm-send");
  const stopButton = $("llm-stop");
  const history = [];
  let controller = null;

  function setBusy(busy) {
    sendButton.disabled = busy;
    stopButton.disabled = !busy;
    // aria-busy: screen readers announce the answer once, not every token.
    log.setAttribute("aria-busy", String(busy));
  }

  /** Add a message to the conversation, forgetting the oldest past LLM_KEEP_MESSAGES: the
   *  model gets those as context, and a page left open all day keeps a bounded array. */
  function remember(message) {
    history.push(message);
    history.splice(0, Math.max(0, history.length - LLM_KEEP_MESSAGES));
  }

  function show(node) {
    appendToLog(log, node);
    trimLog(log, LLM_KEEP_NODES, false);
  }

  async function ask(question) {
    remember({ role: "user", content: question });
    show(element("p", "turn user", question));
    const answer = element("p", "turn assistant");
    show(answer);
    controller = new AbortController();
    setBusy(true);
    setBadge(pane, "streaming");
    let text = "";
    try {
      await streamCompletion({
        model: $("llm-model").value,
        messages: history.slice(), // bounded by remember()
        signal: controller.signal,
        onToken: (token) => {
          text += token;
          answer.append(token); // a text node: tokens are text, never markup
          log.scrollTop = log.scrollHeight;
        },
      });
      setBadge(pane, "done");
    } catch (error) {
      if (error.name === "AbortError") {
        answer.classList.add("stopped"); // CSS marks it; the text stays what the model said
        setBadge(pane, "stopped");
      } else {
        setBadge(pane, "error");
        show(element("p", "turn error", `Error: ${error.message}`));
      }
    } finally {
      if (text) remember({ role: "assistant", content: text });
      controller = null;
      setBusy(false);
    }
  }

  $("llm-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const question = prompt.value.trim();
    if (!question || controller) return;
    prompt.value = "";
    ask(question);
  });

  // Enter sends, Shift+Enter makes a new line (as chat boxes do).
  prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $("llm-form").requestSubmit();
    }
  });

  // Aborting the fetch closes the connection; the server sees the client leave and stops
  // generating (and, when relaying, cancels its upstream request).
  stopButton.addEventListener("click", () => controller?.abort());
  loadModels();
}

// -- long task: POST, then EventSource on its channel ----------------------------------------

/** Milliseconds of silence after which a task is taken as lost, on top of the expected gap
 *  between its events: the longest `retry:` a draining server sends (5 s), so a page whose
 *  server restarted has reconnected, and been told what there is to tell, by then. */
const TASK_RETRY_GRACE_MS = 5000;

function startTasks() {
  const pane = $("task");
  const bar = $("task-progress");
  const percent = $("task-percent");
  const detail = $("task-detail");
  const startButton = $("task-start");
  let source = null;
  let staleTimer = null;

  /** A task state ({"done", "total", "percent"}) from an event, or null if it is not one. */
  function stateOf(event) {
    const state = parseJSON(event.data);
    const ok = isObject(state) && Number.isSafeInteger(state.done)
      && Number.isSafeInteger(state.total) && Number.isSafeInteger(state.percent);
    return ok ? state : null;
  }

  function show(state) {
    if (!state) return;
    bar.max = state.total;
    bar.value = state.done;
    percent.textContent = `${state.percent} %`;
    detail.textContent = `${state.done} of ${state.total} steps`;
  }

  /** The end, whichever it is: the stream closed, Start enabled again, the badge set, and
   *  (for anything but done) the detail replaced by the reason. */
  function finish(state, text, why) {
    clearTimeout(staleTimer);
    source?.close();
    source = null;
    startButton.disabled = false;
    setBadge(pane, state, text);
    if (why) detail.textContent = why;
  }

  function follow(task, steps, intervalMs) {
    show({ done: 0, total: steps, percent: 0 });
    // The server publishes when the whole percent goes up, so events come every
    // ceil(steps / 100) steps; silence for three such gaps, plus the time a restarted
    // server's retry takes, means the task is gone (the job died with its process, and a
    // shared broker has nothing more to replay).
    const staleMs = 3 * intervalMs * Math.ceil(steps / 100) + TASK_RETRY_GRACE_MS;
    const expectProgress = () => {
      clearTimeout(staleTimer);
      staleTimer = setTimeout(() => finish("error", "lost",
        `No progress for ${Math.round(staleMs / 1000)} s: the task was lost `
        + "(the server restarted, or cannot be reached)."), staleMs);
    };
    expectProgress();
    // The URL resumes from the task's first event, so progress made before this connection
    // opened is replayed; on a drop the browser resumes with Last-Event-ID by itself.
    source = new EventSource(task.events);
    source.addEventListener("open", () => setBadge(pane, "running"));
    source.addEventListener("progress", (event) => {
      show(stateOf(event));
      expectProgress();
    });
    source.addEventListener("done", (event) => {
      show(stateOf(event));
      finish("done");
    });
    source.addEventListener("cancelled", (event) => {
      // The server stopped before the task ended (published as its last event).
      const state = stateOf(event);
      show(state);
      const reason = parseJSON(event.data)?.reason;
      const at = state ? ` after ${state.done} of ${state.total} steps` : "";
      finish("error", "cancelled",
        `Cancelled${at}: ${typeof reason === "string" ? reason : "the server stopped"}.`);
    });
    source.addEventListener("reset", () => {
      // The server does not know this task's history: a new process whose in-memory hub
      // never saw it. The job died with the old one; nothing more will come.
      finish("error", "lost", "The server lost this task (it restarted, and the task with it).");
    });
    source.addEventListener("error", () => {
      if (source?.readyState === EventSource.CLOSED) {
        finish("error", "error", "The progress stream failed (the server refused it).");
      } else if (source) {
        setBadge(pane, "reconnecting");
      }
    });
  }

  $("task-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const steps = Number($("task-steps").value);
    const intervalMs = Number($("task-interval").value);
    const query = new URLSearchParams({ steps, interval: intervalMs });
    startButton.disabled = true;
    setBadge(pane, "connecting", "starting");
    try {
      const response = await fetch(`/tasks?${query}`, { method: "POST" });
      if (!response.ok) throw new Error(await response.text());
      follow(await response.json(), steps, intervalMs);
    } catch (error) {
      // 503 answers JSON ({"error": ...}); 400 answers text: show either as it came.
      const body = parseJSON(error.message);
      const message = isObject(body) && typeof body.error === "string" ? body.error : error.message;
      finish("error", "error", `Could not start: ${message}`);
    }
  });
}

// The script is loaded with `defer`: the document is parsed by now.
startTicker();
startChat();
startLLM();
startTasks();
