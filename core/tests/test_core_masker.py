"""dbnotify.secrets.Masker: the one rule every channel masks echoed secrets by."""

from __future__ import annotations

import pickle

import pytest

from dbnotify.secrets import MASK, Masker, basic_forms, credential_key, forms


def test_a_long_form_is_masked_wherever_it_is() -> None:
    mask = Masker(forms("s3cr3t"))
    assert mask("xs3cr3ty s3cr3t czNjcjN0") == f"x{MASK}y {MASK} {MASK}"


@pytest.mark.parametrize(
    ("said", "masked"),
    [
        ("pw ab refused", f"pw {MASK} refused"),
        ("ab", MASK),
        ("pw=ab&x=1", f"pw={MASK}&x=1"),
        (
            "'ab' \"ab\" (ab) [ab] ab: ab, ab.",
            f"'{MASK}' \"{MASK}\" ({MASK}) [{MASK}] {MASK}: {MASK}, {MASK}.",
        ),
        ("about tab ab1 ab_ _ab éab abé", "about tab ab1 ab_ _ab éab abé"),
    ],
)
def test_a_short_form_is_masked_only_where_it_stands_alone(said: str, masked: str) -> None:
    assert Masker(forms("ab"))(said) == masked


def test_a_short_secret_s_encoded_forms_count_too() -> None:
    """``a&`` URL-encoded is ``a%26`` (long enough to mask anywhere); ``YSY`` its base64."""
    mask = Masker(forms("a&"))
    assert (
        mask("got a& / a%26 / YSY= / YSY / xYSYx")
        == f"got {MASK} / {MASK} / {MASK} / {MASK} / xYSYx"
    )


def test_characters_of_regular_expressions_are_plain_characters() -> None:
    assert Masker(["a+", ".*"])("a+ .* aa+ xa .*x") == f"{MASK} {MASK} aa+ xa .*x"


def test_longest_first_so_a_form_holding_another_is_masked_whole() -> None:
    assert Masker(["ab", "ab-cd-ef"])("ab-cd-ef ab") == f"{MASK} {MASK}"


def test_basic_forms_and_credential_keys() -> None:
    assert Masker(basic_forms("u", "p"))("Basic dTpw and p") == f"Basic {MASK} and {MASK}"
    assert [
        k for k in ("apikey", "access_token", "Password", "sig", "v", "mode") if credential_key(k)
    ] == [
        "apikey",
        "access_token",
        "Password",
        "sig",
    ]


def test_a_masker_never_shows_its_forms() -> None:
    mask = Masker(forms("s3cr3t"))
    assert "s3cr3t" not in repr(mask)
    assert repr(mask).startswith("Masker(")
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(mask)
    assert not Masker()
    assert Masker()("ab") == "ab"
    assert Masker().optional(None) is None
