"""The host's side of display frames: only the nonce's frames count, the host keeps its own caps
on top of the runner's, and a malformed display frame is a protocol error, never an image."""

from __future__ import annotations

import base64
import json

from jupyter_exec_ext.sandbox.protocol import Exchange, FrameReader

NONCE = "ab" * 16
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 100).decode()


def frame(obj: dict, nonce: str = NONCE) -> bytes:
    return f"{nonce} {json.dumps(obj)}\n".encode()


def display(data: str = PNG) -> dict:
    return {"type": "display", "mime": "image/png", "data": data}


def test_display_frames_are_collected_in_order_under_the_nonce_only():
    ex = Exchange()
    reader = FrameReader(NONCE, ex, 1024, display_limit=5, display_bytes=10_000)
    reader.feed(
        frame(display())
        + frame(display(), nonce="00" * 16)
        + b'{"type": "display"}\n'
        + frame(display(PNG[:-4] + "AAAA"))
    )
    assert ex.displays == [
        {"mime": "image/png", "data": PNG},
        {"mime": "image/png", "data": PNG[:-4] + "AAAA"},
    ]
    assert reader.stray == 2 and not ex.protocol_error


def test_the_host_caps_count_and_bytes_whatever_the_runner_sends():
    ex = Exchange()
    reader = FrameReader(NONCE, ex, 1024, display_limit=2, display_bytes=10_000)
    reader.feed(frame(display()) * 5)
    assert len(ex.displays) == 2
    ex = Exchange()
    reader = FrameReader(NONCE, ex, 1024, display_limit=10, display_bytes=150)
    reader.feed(frame(display()) * 3)  # each about 81 bytes decoded: one fits in 150
    assert len(ex.displays) == 1


def test_a_malformed_display_frame_is_a_protocol_error():
    for bad in (
        {"type": "display", "mime": "text/html", "data": "<script>"},
        {"type": "display", "mime": "image/png", "data": 5},
        {"type": "display", "mime": "image/png"},
    ):
        ex = Exchange()
        FrameReader(NONCE, ex, 1024).feed(frame(bad))
        assert (
            ex.displays == [] and ex.protocol_error == "the runner sent a malformed display frame"
        )


def test_the_byte_cap_is_of_decoded_bytes_and_an_image_that_fills_it_exactly_fits(caplog):
    exact = "A" * 200  # 150 bytes decoded
    ex = Exchange()
    reader = FrameReader(NONCE, ex, 1024, display_bytes=150)
    with caplog.at_level("WARNING", logger="jupyter_exec_ext.sandbox.protocol"):
        reader.feed(frame(display(exact)) + frame(display("AAAA")))
    assert [d["data"] for d in ex.displays] == [exact] and ex.display_bytes == 150
    assert [r.getMessage() for r in caplog.records] == [
        "display frame beyond the host's caps dropped"
    ]
    ex = Exchange()
    FrameReader(NONCE, ex, 1024, display_bytes=149).feed(frame(display(exact)))
    assert ex.displays == [] and ex.display_bytes == 0 and not ex.protocol_error


def test_the_byte_cap_counts_every_image_kept_in_whole_bytes():
    ex = Exchange()
    reader = FrameReader(NONCE, ex, 1024, display_bytes=160)
    reader.feed(frame(display("A" * 80)) * 3)  # 60 bytes each: the third would pass 160
    assert len(ex.displays) == 2 and ex.display_bytes == 120
    ex = Exchange()
    FrameReader(NONCE, ex, 1024).feed(frame(display("A" * 202)))  # 151.5 bytes: 151 whole
    assert ex.display_bytes == 151
