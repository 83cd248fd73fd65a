"""Splitting long messages for Telegram, and checking the answers a flow gets."""

import pytest

from db.models import BotConversation
from domain.conversations import check_answer, fill_url
from domain.flows import Step
from domain.outbox import html_to_plain, split_message
from domain.telegram_html import visible_length


def test_short_text_is_one_part() -> None:
    assert split_message("Hello <b>there</b>") == ["Hello <b>there</b>"]


def test_exactly_the_limit_is_one_part() -> None:
    text = "a" * 4096
    assert split_message(text) == [text]


def test_split_at_last_paragraph() -> None:
    first = "a" * 3000
    second = "b" * 1000
    third = "c" * 1000
    text = f"{first}\n\n{second}\n\n{third}"

    parts = split_message(text)

    assert parts == [f"{first}\n\n{second}", third]


def test_split_prefers_paragraphs() -> None:
    text = "a" * 100 + "\n\n" + "b" * 3000 + "\n" + "c" * 2000

    parts = split_message(text)

    assert parts == ["a" * 100, "b" * 3000, "c" * 2000]


def test_split_falls_back_to_spaces() -> None:
    words = " ".join(["word"] * 2000)  # 9999 characters, no line breaks
    parts = split_message(words)
    assert all(len(part) <= 4096 for part in parts)
    assert " ".join(parts) == words

    solid = "x" * 9000
    parts = split_message(solid)
    assert [len(part) for part in parts] == [4096, 4096, 808]


def test_split_reopens_open_tags() -> None:
    text = "<b>" + "a" * 3000 + "\n\n" + "b" * 3000 + "</b>"

    parts = split_message(text)

    assert parts == ["<b>" + "a" * 3000 + "</b>", "<b>" + "b" * 3000 + "</b>"]
    assert all(visible_length(part) <= 4096 for part in parts)


def test_split_keeps_entities_whole() -> None:
    text = "&lt;" * 5000

    parts = split_message(text)

    assert [visible_length(part) for part in parts] == [4096, 904]
    assert "".join(parts) == text


def test_split_link_keeps_href() -> None:
    text = '<a href="https://example.com/?a=1&amp;b=2">' + "z " * 3000 + "</a>"

    parts = split_message(text)

    assert len(parts) == 2
    for part in parts:
        assert part.startswith('<a href="https://example.com/?a=1&amp;b=2">')
        assert part.endswith("</a>")
        visible_length(part)


def test_split_plain_text_ignores_tags() -> None:
    text = "<b>" * 3000
    assert split_message(text, html_mode=False) == [
        text[:4096],
        text[4096:8192],
        text[8192:],
    ]


def test_html_to_plain_unescapes() -> None:
    assert html_to_plain("Price <b>1.085</b> &amp; TP &lt;2&gt;") == (
        "Price 1.085 & TP <2>"
    )


@pytest.mark.parametrize(
    ("check", "pattern", "text", "saved"),
    [
        ("email", None, " Alex@Example.COM ", "alex@example.com"),
        ("email", None, "alex@", None),
        ("phone", None, "+44 20 7946 0958", "+44 20 7946 0958"),
        ("phone", None, "12345", None),
        ("phone", None, "call me", None),
        ("number", None, "1,5", "1,5"),
        ("number", None, "250000", "250000"),
        ("number", None, "NaN", None),
        ("number", None, "lots", None),
        ("text", None, "anything at all", "anything at all"),
        ("text", None, "   ", None),
        ("text", None, "x" * 1001, None),
        ("text", None, "/help", None),
        ("regex", "[0-9]{6,10}", "12345678", "12345678"),
        ("regex", "[0-9]{6,10}", "1234567890123", None),
        ("regex", "[0-9]{6,10}", "12345678 ", "12345678"),
    ],
)
def test_answers_are_checked(
    check: str, pattern: str | None, text: str, saved: str | None
) -> None:
    step = Step(
        key="q", type="question", text="?", field="f", check=check, pattern=pattern
    )
    assert check_answer(step, text) == saved


def test_slow_pattern_gives_up() -> None:
    step = Step(
        key="q", type="question", text="?", field="f", check="regex", pattern="(a+)+$"
    )
    assert check_answer(step, "a" * 5000 + "!") is None


def test_fill_url_encodes_each_value() -> None:
    conversation = BotConversation(
        answers={"email": "a+b@example.com", "city": "São Paulo"},
        attribution="jane_1",
        username="alex",
        first_name="Alex M",
    )

    url = fill_url(
        "https://b.example/?ib={partnerCode}&e={email}&c={city}&n={firstName}",
        conversation,
    )

    assert url == (
        "https://b.example/?ib=jane_1&e=a%2Bb%40example.com&c=S%C3%A3o%20Paulo"
        "&n=Alex%20M"
    )
