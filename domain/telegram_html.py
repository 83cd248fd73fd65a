"""Checks that a text is HTML that Telegram's parse_mode=HTML accepts.

Telegram takes a small set of tags, each closed in order, with entities
limited to &lt; &gt; &amp; &quot; and numeric ones. Its length limits apply to
the text after the tags and entities are parsed.
"""

import html
import re
from html.parser import HTMLParser

ALLOWED_TAGS = frozenset(
    {
        "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span",
        "tg-spoiler", "a", "code", "pre", "blockquote", "tg-emoji",
    }
)  # fmt: skip
NAMED_ENTITIES = frozenset({"lt", "gt", "amp", "quot"})
ENTITY = re.compile(r"&(#[0-9]+|#x[0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);?")
MESSAGE_LIMIT = 4096
CAPTION_LIMIT = 1024


class InvalidTelegramHtml(ValueError):
    pass


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.open: list[str] = []
        self.visible: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            raise InvalidTelegramHtml(f"the tag <{tag}> is not one Telegram accepts")
        names = {name for name, _ in attrs}
        if tag == "a" and "href" not in names:
            raise InvalidTelegramHtml("a link <a> needs an href")
        if tag == "span" and ("class", "tg-spoiler") not in attrs:
            raise InvalidTelegramHtml('a <span> must be class="tg-spoiler"')
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            expected = f"</{self.open[-1]}>" if self.open else "no closing tag"
            raise InvalidTelegramHtml(
                f"</{tag}> closes nothing open here; {expected} expected"
            )
        self.open.pop()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        raise InvalidTelegramHtml(f"the tag <{tag}/> is not one Telegram accepts")

    def handle_data(self, data: str) -> None:
        # Raw text, before entities are decoded: an escaped &lt; is fine.
        if "<" in data:
            raise InvalidTelegramHtml("a bare < must be written &lt;")
        self.visible.append(data)

    def handle_entityref(self, name: str) -> None:
        if name not in NAMED_ENTITIES:
            raise InvalidTelegramHtml(
                f"&{name}; is not an entity Telegram accepts; use &amp;, &lt;, "
                "&gt;, &quot; or a numeric one"
            )
        self.visible.append(html.unescape(f"&{name};"))

    def handle_charref(self, name: str) -> None:
        self.visible.append(html.unescape(f"&#{name};"))

    def handle_comment(self, data: str) -> None:
        raise InvalidTelegramHtml("comments are not accepted")

    def handle_decl(self, decl: str) -> None:
        raise InvalidTelegramHtml("declarations are not accepted")


def visible_length(text: str) -> int:
    """Check ``text`` as Telegram HTML and return its length once parsed.

    Raises InvalidTelegramHtml with the reason when Telegram would refuse it.
    """
    return len(visible_text(text))


def visible_text(text: str) -> str:
    """Check ``text`` as Telegram HTML and return its visible text.

    Raises InvalidTelegramHtml with the reason when Telegram would refuse it.
    """
    for match in ENTITY.finditer(text):
        name = match.group(1)
        if not match.group(0).endswith(";"):
            raise InvalidTelegramHtml(f"&{name} needs a closing ;")
        if not name.startswith("#") and name not in NAMED_ENTITIES:
            raise InvalidTelegramHtml(
                f"&{name}; is not an entity Telegram accepts; use &amp;, &lt;, "
                "&gt;, &quot; or a numeric one"
            )
    if re.search(r"&(?![A-Za-z#])", text):
        raise InvalidTelegramHtml("a bare & must be written &amp;")
    checker = _Checker()
    checker.feed(text)
    checker.close()
    if checker.open:
        raise InvalidTelegramHtml(f"<{checker.open[-1]}> is never closed")
    return "".join(checker.visible)


def escape(text: str) -> str:
    """Escape plain text for parse_mode=HTML."""
    return html.escape(text, quote=False)
