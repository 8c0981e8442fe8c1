"""A tripwire for the wsproto internals rawstream relies on.

:class:`rawstream.core.deflate.BoundedPerMessageDeflate` subclasses wsproto's
``PerMessageDeflate`` and reads and writes three of its private attributes, and
:attr:`rawstream.core.WebSocketConnection.extensions` reads ``Connection._proto``, whose frame
and message decoders' state the small-frame fast path reads (core/fastws.py).  pyproject.toml
pins wsproto to the releases checked for this (``wsproto>=1.2,<1.4``).  These tests check each
private name, on real wsproto objects fed real frames from wsproto's own client, so that a
wsproto release that renames one or changes what it holds fails here, naming it, instead of
quietly turning bounded inflation off.
"""

from __future__ import annotations

import inspect
import zlib
from collections.abc import Callable
from typing import Any

import wsproto
from wsproto import ConnectionType, WSConnection
from wsproto import events as we
from wsproto.extensions import PerMessageDeflate

from rawstream.core.deflate import BoundedPerMessageDeflate

#: The private attributes of ``PerMessageDeflate`` that core/deflate.py reads and writes.
DEFLATE_PRIVATE = ("_decompressor", "_inbound_compressed", "_inbound_is_compressible")

#: BoundedPerMessageDeflate's own private names: the parent must not have them (an override or
#: a clash would change the parent's behaviour, or ours, silently).
OWN_PRIVATE = (
    "_max_compressed",
    "_inflated",
    "_compressed",
    "_trailing",
    "_inflate",
    "_after_the_end",
)

#: The extension hooks BoundedPerMessageDeflate overrides, with wsproto's own parameters.
HOOKS = {
    "accept": ["self", "offer"],
    "frame_inbound_header": ["self", "proto", "opcode", "rsv", "payload_length"],
    "frame_inbound_payload_data": ["self", "proto", "data"],
    "frame_inbound_complete": ["self", "proto", "fin"],
}

DECOMPRESS_TYPE = type(zlib.decompressobj(-15))


def broken(name: str, why: str) -> str:
    return (
        f"wsproto {wsproto.__version__}: {name} {why}. rawstream relies on it "
        "(src/rawstream/core/deflate.py, core/websocket.py); check them against this wsproto "
        "before changing the wsproto pin in pyproject.toml"
    )


def attribute(obj: object, name: str) -> Any:
    assert hasattr(obj, name), broken(f"{type(obj).__name__}.{name}", "is gone")
    return getattr(obj, name)


def handshake(extension: PerMessageDeflate) -> tuple[WSConnection, WSConnection]:
    """wsproto's client and wsproto's server, which accepted ``extension`` (deflate offered)."""
    client = WSConnection(ConnectionType.CLIENT)
    server = WSConnection(ConnectionType.SERVER)
    server.receive_data(
        client.send(we.Request(host="example.com", target="/ws", extensions=[PerMessageDeflate()]))
    )
    (request,) = server.events()
    assert isinstance(request, we.Request)
    client.receive_data(server.send(we.AcceptConnection(extensions=[extension])))
    (accepted,) = client.events()
    assert isinstance(accepted, we.AcceptConnection)
    assert accepted.extensions and accepted.extensions[0].name == "permessage-deflate"
    return client, server


def deliver(client: WSConnection, server: WSConnection, event: we.Event) -> list[we.Event]:
    """Send one frame from the client; the events the server makes of it."""
    server.receive_data(client.send(event))
    return list(server.events())


def test_permessage_deflate_has_the_private_attributes_deflate_py_uses() -> None:
    extension = PerMessageDeflate()
    missing = [name for name in DEFLATE_PRIVATE if not hasattr(extension, name)]
    assert not missing, broken(f"PerMessageDeflate.{', .'.join(missing)}", "is gone")
    for name in DEFLATE_PRIVATE:
        assert getattr(extension, name) is None, broken(
            f"PerMessageDeflate.{name}", f"starts as {getattr(extension, name)!r}, not None"
        )


def test_our_private_names_and_hooks_do_not_clash_with_the_parent() -> None:
    clashes = [name for name in OWN_PRIVATE if hasattr(PerMessageDeflate(), name)]
    assert not clashes, broken(
        f"PerMessageDeflate.{', .'.join(clashes)}", "now exists: BoundedPerMessageDeflate's own"
    )
    for name, parameters in HOOKS.items():
        hook: Callable[..., Any] = attribute(PerMessageDeflate, name)
        found = list(inspect.signature(hook).parameters)
        assert found == parameters, broken(f"PerMessageDeflate.{name}", f"takes {found}")
        ours = list(inspect.signature(getattr(BoundedPerMessageDeflate, name)).parameters)
        assert ours == found, f"BoundedPerMessageDeflate.{name} takes {ours}, wsproto {found}"


def test_connection_proto_extensions_holds_the_accepted_extension() -> None:
    """core/websocket.py names the extensions in use from ``Connection._proto.extensions``."""
    extension = PerMessageDeflate()
    _, server = handshake(extension)
    connection = attribute(server, "connection")
    proto = attribute(connection, "_proto")
    extensions = attribute(proto, "extensions")
    assert isinstance(extensions, list), broken("Connection._proto.extensions", "is no list")
    assert len(extensions) == 1 and extensions[0] is extension, broken(
        "Connection._proto.extensions", f"holds {extensions!r}, not the accepted extension"
    )


def test_the_parent_sets_the_private_state_of_a_fragmented_compressed_message() -> None:
    """What BoundedPerMessageDeflate reads after the parent's ``frame_inbound_header``: a
    message's compression carried from its first frame to its last, a zlib decompressor made
    when there is none and kept across messages (context takeover)."""
    extension = PerMessageDeflate()
    client, server = handshake(extension)

    first = deliver(client, server, we.TextMessage("hello " * 50, message_finished=False))
    assert [type(e) for e in first] == [we.TextMessage]
    assert extension._inbound_compressed is True, broken(
        "PerMessageDeflate._inbound_compressed",
        f"is {extension._inbound_compressed!r} inside a compressed message, not True",
    )
    assert extension._inbound_is_compressible is True, broken(
        "PerMessageDeflate._inbound_is_compressible",
        f"is {extension._inbound_is_compressible!r} for a text frame, not True",
    )
    decompressor = extension._decompressor
    assert isinstance(decompressor, DECOMPRESS_TYPE), broken(
        "PerMessageDeflate._decompressor", f"is {decompressor!r}, not a zlib decompressobj"
    )

    # A continuation frame (RSV1 clear) does not reset the message's compression ...
    second = deliver(client, server, we.TextMessage("world " * 50, message_finished=False))
    assert extension._inbound_compressed is True, broken(
        "PerMessageDeflate._inbound_compressed",
        f"is {extension._inbound_compressed!r} after a continuation frame, not True",
    )
    # ... and the message's end resets it, keeping the decompressor (context takeover).
    last = deliver(client, server, we.TextMessage("!", message_finished=True))
    pieces = [e for e in first + second + last if isinstance(e, we.TextMessage)]
    assert "".join(e.data for e in pieces) == "hello " * 50 + "world " * 50 + "!"
    assert pieces[-1].message_finished
    assert extension._inbound_compressed is None, broken(
        "PerMessageDeflate._inbound_compressed",
        f"is {extension._inbound_compressed!r} after a message ended, not None",
    )
    assert extension._decompressor is decompressor, broken(
        "PerMessageDeflate._decompressor", "was replaced between messages with context takeover"
    )

    # deflate.py sets _decompressor to None to start the next message's stream afresh.
    extension._decompressor = None
    (message,) = deliver(client, server, we.TextMessage("again"))
    assert isinstance(message, we.TextMessage) and message.data == "again"
    assert extension._inbound_compressed is None
    fresh = extension._decompressor
    assert isinstance(fresh, DECOMPRESS_TYPE) and fresh is not decompressor, broken(
        "PerMessageDeflate._decompressor", f"is {fresh!r} after being reset, not a new decompressor"
    )


def test_bounded_deflate_still_bounds_through_a_real_connection() -> None:
    """The same private state, used by our subclass: a message past its limit fails 1009."""
    extension = BoundedPerMessageDeflate(max_message_bytes=1000)
    client, server = handshake(extension)
    (small,) = deliver(client, server, we.BytesMessage(b"x" * 1000))
    assert isinstance(small, we.BytesMessage) and len(small.data) == 1000
    events = deliver(client, server, we.BytesMessage(b"\x00" * 100_000))
    closes = [e for e in events if isinstance(e, we.CloseConnection)]
    assert [e.code for e in closes] == [1009], events
    assert sum(len(e.data) for e in events if isinstance(e, we.BytesMessage)) <= 1001


def test_the_parser_state_the_fast_path_reads() -> None:
    """core/websocket.py turns its small-frame fast path on only while wsproto holds nothing
    in progress, read from ``_proto._frame_decoder.header`` and ``.buffer`` and
    ``_proto._message_decoder.opcode``: None, empty and None between whole messages, and
    otherwise not, so the fast path cannot cut into a frame or message wsproto has begun."""
    client = WSConnection(ConnectionType.CLIENT)
    server = WSConnection(ConnectionType.SERVER)
    server.receive_data(client.send(we.Request(host="example.com", target="/ws")))
    list(server.events())
    client.receive_data(server.send(we.AcceptConnection()))
    list(client.events())
    proto = attribute(attribute(server, "connection"), "_proto")
    frames = attribute(proto, "_frame_decoder")
    messages = attribute(proto, "_message_decoder")

    def idle() -> bool:
        return (
            attribute(frames, "header") is None
            and len(attribute(frames, "buffer")) == 0
            and attribute(messages, "opcode") is None
        )

    assert idle(), broken("the frame parser's state", "is not idle after the handshake")
    whole = client.send(we.TextMessage("hello"))
    server.receive_data(whole[:3])
    list(server.events())
    assert not idle(), broken("FrameDecoder.header/.buffer", "do not show a frame begun")
    server.receive_data(whole[3:])
    assert [e.data for e in server.events() if isinstance(e, we.TextMessage)] == ["hello"]
    assert idle(), broken("the frame parser's state", "is not idle after a whole message")
    server.receive_data(client.send(we.TextMessage("part", message_finished=False)))
    list(server.events())
    assert not idle(), broken("MessageDecoder.opcode", "does not show a message begun")
