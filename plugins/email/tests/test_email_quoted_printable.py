"""The message's quoted-printable parts: encoded line by line (the template's lines from a
cache), they are byte for byte what encoding the whole text at once gives."""

from __future__ import annotations

import binascii
import random

import pytest

from dbnotify_email import message


def _at_once(text: str) -> bytes:
    plain = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    return binascii.b2a_qp(plain, istext=True).replace(b"\n", b"\r\n")


EDGES = [
    "",
    "\n",
    "no line end",
    "ends with a space \nand a tab\t\nlast ",
    "x" * 75 + " \n" + "y" * 75 + "\t",  # whitespace where a soft break falls
    "x" * 76 + "\n" + "=" * 40 + "\n",
    "é" * 40 + "\n" + "\u00a0" * 30,
    "crlf\r\nand cr\rmixed\n",
    "a line longer than the cache keeps " * 20 + "\nshort\n",
]


@pytest.mark.parametrize("text", EDGES)
def test_edges_encode_as_at_once(text: str) -> None:
    assert message.quoted_printable(text) == _at_once(text)
    assert message.quoted_printable(text) == _at_once(text)  # again, from the cache


def test_random_texts_encode_as_at_once() -> None:
    rng = random.Random(16)
    alphabet = "ab =\t \u00e9\u00a0x.\n"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 240)))
        assert message.quoted_printable(text) == _at_once(text), repr(text)


def test_cache_stays_bounded() -> None:
    for number in range(3 * message.QP_CACHE_LINES):
        message.quoted_printable(f"line {number}\n")
    assert len(message._qp_lines) <= message.QP_CACHE_LINES
