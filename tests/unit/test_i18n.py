"""The Korean catalog covers every text a person reads, and templates put no text outside `_()`."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po, write_po

from app import i18n
from app.services.record_text import record_text
from app.web import templating

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "app" / "templates"
# The same keywords as `make messages`.
KEYWORDS = {**DEFAULT_KEYWORDS, "_": None, "N_": None, "gettext": None, "ngettext": (1, 2)}

BRACES = re.compile(r"\{(\w*)[^{}]*\}")
PERCENT = re.compile(r"%(?:\(\w+\))?[#0\- +]*\d*(?:\.\d+)?[a-zA-Z%]")
HANGUL = re.compile(r"[\uac00-\ud7a3]")
# Words that stay as they are in Korean text: the product, AWS names, abbreviations.
KEPT_WORDS = re.compile(
    r"iam-onboard|[A-Z][A-Z0-9]+s?\b|Google Authenticator|Microsoft Authenticator|1Password|"
    r"Authy|arn:aws:[^\s\"']+|https?://\S+|[\w.-]+@[\w.-]+|\S*[_:/=~`${}\[\]*]\S*|\S+\.\w\S*",
)


@cache
def extracted(tmp_dir: str) -> Catalog:
    """Extract like `make messages` (babel.cfg, same keywords) into a .pot and read it back."""
    with (ROOT / "babel.cfg").open(encoding="utf-8") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    catalog = Catalog(project="iam-onboard")
    for filename, lineno, message, comments, context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=KEYWORDS
    ):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    pot = Path(tmp_dir) / "messages.pot"
    with pot.open("wb") as handle:
        write_po(handle, catalog)
    with pot.open("rb") as handle:
        return read_po(handle)


@cache
def korean() -> Catalog:
    with i18n.catalog_path("ko").open("rb") as handle:
        return read_po(handle, locale="ko")


def ids(message: Message) -> list[str]:
    return list(message.id) if isinstance(message.id, tuple) else [message.id]


def strings(message: Message) -> list[str]:
    return list(message.string) if isinstance(message.string, tuple) else [message.string]


@pytest.fixture(scope="module")
def pot(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return extracted(str(tmp_path_factory.mktemp("pot")))


def test_extraction_finds_texts_of_every_kind(pot: Catalog):
    found = {ids(m)[0] for m in pot if m.id}
    # A page, a mail, an error raised by a service, a CLI line, an N_() mark, a plural.
    for text in (
        "Set up your AWS sign-in",
        "Hello,",
        "This link can't be used any more. Ask the person who invited you for a new one.",
        "All checks passed.",
        "Use at least 12 characters.",
        "{n} try left.",
    ):
        assert text in found


def test_every_extracted_text_has_a_korean_translation(pot: Catalog):
    ko = korean()
    problems = []
    for message in pot:
        if not message.id:
            continue
        entry = ko.get(message.id)
        if entry is None:
            problems.append(f"not in the catalog (run `make messages`): {ids(message)[0]!r}")
        elif entry.fuzzy or not all(s.strip() for s in strings(entry)):
            problems.append(f"no Korean translation: {ids(message)[0]!r}")
    assert not problems, "\n".join(problems)


def test_texts_used_in_templates_hold_no_markup(pot: Catalog):
    """Jinja marks a translated text safe, so a `<` or `&` in it would reach the page raw."""
    ko = korean()
    problems = []
    for message in pot:
        if not message.id or not any(f.startswith("app/templates/") for f, _l in message.locations):
            continue
        entry = ko.get(message.id)
        for text in ids(message) + (strings(entry) if entry is not None else []):
            if "<" in text or "&" in text:
                problems.append(text)
    assert not problems, "pass markup-like text as a .format() value instead:\n" + "\n".join(
        problems
    )


def test_no_obsolete_or_fuzzy_entries_linger():
    ko = korean()
    assert not ko.obsolete, list(ko.obsolete)
    assert not [m.id for m in ko if m.id and m.fuzzy]
    assert ko.num_plurals == 1  # Korean has one form; `make messages` keeps the header right


def translation_problems(message: Message) -> list[str]:
    """What is wrong with one entry's Korean: placeholders lost or added, English left in."""
    source = " ".join(ids(message))
    names = sorted(set(BRACES.findall(source)))
    percents = sorted(set(PERCENT.findall(source)))
    english = re.search(r"[a-z]{2,}", KEPT_WORDS.sub(" ", BRACES.sub(" ", source)))
    problems = []
    for text in strings(message):
        if not text:
            continue  # a missing translation fails the test above it
        if sorted(set(BRACES.findall(text))) != names:
            problems.append(f"placeholders {names} not kept: {text!r}")
        # Jinja applies `%` to every translated text, so a stray % would break the page.
        if sorted(set(PERCENT.findall(text))) != percents or "%" in PERCENT.sub("", text):
            problems.append(f"% placeholders {percents} not kept: {text!r}")
        try:
            text.format(**{name: "x" for name in names})  # .format() must accept it
        except (KeyError, IndexError, ValueError) as exc:
            problems.append(f".format() fails ({exc!r}): {text!r}")
        if english and not HANGUL.search(text):
            problems.append(f"not translated: {text!r}")
    return problems


def test_translations_keep_the_placeholders_and_read_as_korean():
    """One test for the whole catalog, listing every entry at fault at once."""
    entries = [m for m in korean() if m.id]
    assert len(entries) > 100  # the catalog was read
    problems = [p for message in entries for p in translation_problems(message)]
    assert not problems, "\n".join(problems)


def test_the_translation_check_finds_lost_placeholders_and_english():
    def entry(source: str, korean_text: str) -> Message:
        return Message(source, korean_text)

    assert translation_problems(entry("Hello {name}", "안녕하세요 {name}")) == []
    assert translation_problems(entry("Hello {name}", "안녕하세요"))  # {name} lost
    assert translation_problems(entry("Hello {name}", "안녕하세요 {name} {extra}"))
    assert translation_problems(entry("%(n)s users", "사용자"))  # %(n)s lost
    assert translation_problems(entry("Done: 100%", "완료: 100%"))  # a stray %
    assert translation_problems(entry("Hello there", "Hello there"))  # left in English
    assert translation_problems(entry("{a} of {b}", "{a} / {b"))  # .format() would fail


# -- templates ---------------------------------------------------------------------------------
ALLOWED_IN_TEMPLATES = re.compile(r"iam-onboard|\b(?:AWS|MFA|IAM|UTC)\b|&[#\w]+;")
IGNORED_ELEMENTS = re.compile(r"<(pre|code|script|style)\b.*?</\1>", re.DOTALL | re.IGNORECASE)
TEXT_ATTRIBUTES = re.compile(r"\b(?:aria-label|title|alt|placeholder)=\"([^\"]*)\"")


# Blocks that fill an attribute (a CSS class, a link target), not text.
ATTRIBUTE_BLOCKS = {"body_class", "brand_href"}


def template_text(source: str) -> str:
    """The template's own text: its data tokens, with every {{ }} and {% %} as a blank."""
    parts: list[str] = []
    names: list[str] = []  # the names of the statement being read
    blocks: list[str] = []
    for _lineno, kind, value in templating.env.lex(source):
        if kind == "block_begin":
            names = []
        elif kind == "name":
            names.append(value)
        elif kind == "block_end" and names[:1] == ["block"]:
            blocks.append(names[1])
        elif kind == "block_end" and names[:1] == ["endblock"]:
            blocks.pop()
        if kind == "data" and not ATTRIBUTE_BLOCKS.intersection(blocks):
            parts.append(value)
        else:
            parts.append(" ")
    return "".join(parts)


def untranslated_text(source: str) -> list[str]:
    text = IGNORED_ELEMENTS.sub(" ", template_text(source))
    attributes = TEXT_ATTRIBUTES.findall(text)
    text = re.sub(r"<!--.*?-->", " ", text, flags=re.DOTALL)
    text = re.sub(r"<[^>]*>", " ", text)
    found = []
    for chunk in [*text.split("\n"), *attributes]:
        rest = ALLOWED_IN_TEMPLATES.sub(" ", chunk)
        if re.search(r"[A-Za-z]", rest):
            found.append(chunk.strip())
    return found


TEMPLATE_FILES = sorted(
    p for p in TEMPLATES.rglob("*") if p.suffix in (".html", ".txt") and p.is_file()
)


@pytest.mark.parametrize("path", TEMPLATE_FILES, ids=lambda p: str(p.relative_to(TEMPLATES)))
def test_templates_show_no_text_outside_the_translation_function(path: Path):
    assert untranslated_text(path.read_text(encoding="utf-8")) == []


def test_the_template_scan_catches_bare_text():
    assert untranslated_text("<p>Hello there</p>") == ["Hello there"]
    assert untranslated_text('<nav aria-label="Main">{{ _("x") }}</nav>') == ["Main"]
    assert untranslated_text("<p>{{ _('Hello') }} · iam-onboard UTC</p>") == []
    assert untranslated_text("<pre><code>aws sts get-session-token</code></pre>") == []
    assert untranslated_text('<body class="{% block body_class %}x-y{% endblock %}">') == []
    assert untranslated_text("{% block title %}Dashboard{% endblock %}") == ["Dashboard"]


# -- choosing the language -----------------------------------------------------------------------
def test_accept_language_picks_korean_by_preference_order():
    pick = i18n.pick_language
    assert pick(cookie=None, accept_language="ko-KR,ko;q=0.9,en;q=0.8") == "ko"
    assert pick(cookie=None, accept_language="en-US,en;q=0.9,ko;q=0.8") == "en"
    assert pick(cookie=None, accept_language="fr;q=1.0, ko;q=0.5") == "ko"
    assert pick(cookie=None, accept_language="en;q=0.2, ko-KR;q=0.7") == "ko"
    assert pick(cookie=None, accept_language="fr, de") == "en"
    assert pick(cookie=None, accept_language=None) == "en"


def test_the_switcher_cookie_wins_over_the_header():
    pick = i18n.pick_language
    assert pick(cookie="en", accept_language="ko-KR,ko;q=0.9") == "en"
    assert pick(cookie="ko", accept_language="en-US") == "ko"
    assert pick(cookie="xx", accept_language="ko") == "ko"  # an unknown cookie value is ignored


def test_lang_environment_variable_picks_the_cli_language():
    assert i18n.language_from_env("ko_KR.UTF-8") == "ko"
    assert i18n.language_from_env("C.UTF-8") == "en"
    assert i18n.language_from_env(None) == "en"


def test_texts_follow_the_current_language():
    try:
        i18n.set_language("ko")
        assert i18n._("Start") == "시작하기"
        assert i18n.ngettext("{n} try left.", "{n} tries left.", 3).format(n=3) == (
            "3번 더 시도할 수 있습니다."
        )
        i18n.set_language("en")
        assert i18n._("Start") == "Start"
    finally:
        i18n.set_language("en")


def test_stored_records_are_shown_in_the_readers_language():
    detail = "wrong; failed tries 2/5"
    try:
        i18n.set_language("ko")
        shown = record_text(detail)
        assert "2" in shown and "5" in shown and HANGUL.search(shown) and "failed" not in shown
        assert HANGUL.search(record_text("temporary password, change required at first sign-in"))
        assert record_text("an AWS message nobody wrote here") == "an AWS message nobody wrote here"
        i18n.set_language("en")
        # Shown as a sentence, not as the terse record the exports keep.
        assert record_text(detail) == "A code was wrong. Wrong tries so far: 2 of 5."
        assert record_text("not_consecutive; failed tries 1/5").startswith("The two codes were")
        assert record_text("email=a@example.com groups=-") == "Email a@example.com; no extra groups"
        assert record_text("groups=Dev,Ops") == "Extra groups: Dev, Ops"
        assert record_text("1 users, 6 IAM calls") == "1 user, 6 IAM calls"
    finally:
        i18n.set_language("en")
