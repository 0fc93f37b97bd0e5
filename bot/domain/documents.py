"""Guild knowledge documents: reading an uploaded file as text, and cutting it into passages worth recalling.

Pure rules; the knowledge service stores and embeds what they return. A passage must make sense on its own,
as recall shows it without its neighbours, so each one starts with the path of headings it sits under
("Setting > The Harbour: …"), keeps whole paragraphs together when it can, and otherwise splits at sentence ends,
repeating the last sentence or two of the passage before it.
"""

import bisect
import itertools
import math
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from bot.errors import HearthError

MAX_DOCUMENT_BYTES = 2 * 1024 * 1024
MAX_CHUNKS = 2_000
DOCUMENT_EXTENSIONS = (".txt", ".md", ".markdown")

# Byte order marks, longest first (UTF-32 LE starts with UTF-16 LE's mark).
_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
# Signatures of common binary files that someone might rename to .txt.
_BINARY_SIGNATURES = (b"%PDF-", b"PK\x03\x04", b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"\x7fELF")
# Control characters a text file may hold: tab, line feed, carriage return, form feed.
_TEXT_CONTROLS = frozenset("\t\n\r\f")
# A text with more than this share of other control characters is not prose.
_MAX_CONTROL_SHARE = 0.01
# How much of a file (bytes, from its start) is looked at for control characters.
_SAMPLE_BYTES = 4096
# Characters that show nothing, besides whitespace and Unicode's format characters (zero-width spaces and joiners,
# byte order marks, soft hyphens): the Hangul fillers and the blank Braille pattern, letters and symbols to Unicode.
_BLANKS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
# Characters that count as one word when measuring a long run of text without spaces (a link, a code).
_CHARS_PER_WORD = 8
# Characters that count as a word each: Chinese, Japanese and Korean script, punctuation and full-width forms, which
# take a token or more each (a passage of 180 "words" of eight of them would hold 1,500 tokens and more).
_WIDE = re.compile(
    r"[\u1100-\u11ff\u3000-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]"
)
# Of those, the ones of Chinese and Japanese, written without spaces between words or sentences.
_UNSPACED = re.compile(r"[\u3000-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")

# Possessive quantifiers, and a title that ends at a non-space, so a line with long runs of spaces is not
# backtracked over in quadratic time.
_ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?[^ \t])?)?(?:[ \t]++#++)?[ \t]*+$")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_THEMATIC_BREAK = re.compile(r"^ {0,3}([-*_])(?:[ \t]*+\1){2,}+[ \t]*+$")
_FENCE = re.compile(r"^ {0,3}(```+|~~~+)")
# A line that starts its own line of a passage rather than continuing the one before: list items, table rows,
# quotes.
_BLOCK_START = re.compile(r"^\s*(?:[-*+•]\s|\d{1,3}[.)]\s|\||>)")
# A sentence ends at a full stop and the space after it; in Chinese and Japanese, which put no space there, at the
# full stop itself.
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*\s+|[。！？][\"'”’)\]」』）]*\s*")
_HEADING_DECORATION = "*_` \t"
# Front matter, the metadata block Jekyll, Hugo, Obsidian and other editors put at the top of a Markdown file:
# YAML "key: value" lines between --- (closed by --- or ...), or TOML "key = value" lines between +++.
_FRONT_MATTER = {
    "---": (re.compile(r"[ \t]*[\w\"'][^\n:=]*:(?:\s|$)"), re.compile(r"^(?:---|\.\.\.)[ \t]*$", re.MULTILINE)),
    "+++": (re.compile(r"[ \t]*[\w\"'][^\n:=]*="), re.compile(r"^\+\+\+[ \t]*$", re.MULTILINE)),
}
_FRONT_MATTER_TITLE = re.compile(r"^title[ \t]*[:=][ \t]*(.*)$", re.MULTILINE | re.IGNORECASE)
_MAX_SETEXT_WORDS = 12
# A "heading" longer than this is a paragraph made big text (Discord's Markdown does it with "# "), not a title to
# put before every passage under it.
_MAX_HEADING_WORDS = 30


class DocumentError(HearthError):
    """An uploaded document cannot be used; the message says why, fit to show the uploader as is."""


def _shown(filename: str) -> str:
    return f"“{filename.strip()}”" if filename.strip() else "The file"


def check_upload(filename: str, size_bytes: int) -> None:
    """Reject a file by its name and size alone, before it is downloaded."""
    shown = _shown(filename)
    if not filename.strip().lower().endswith(DOCUMENT_EXTENSIONS):
        raise DocumentError(f"{shown} is not a text document: upload a .txt or .md file.")
    if size_bytes > MAX_DOCUMENT_BYTES:
        raise DocumentError(
            f"{shown} is too large (limit {MAX_DOCUMENT_BYTES // (1024 * 1024)} MB): split it into smaller files."
        )


def document_key(name: str) -> str:
    """What one document's name is told from another's by: not its letters' case, nor how Unicode composes them
    ("Lore.md" is "lore.md"; "Café.md" as macOS writes it, e and a combining accent, is "Café.md" as Windows does),
    for an admin uploading either means a new version of the same document."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", name).casefold())


def _looks_binary(data: bytes, encoding: str | None) -> bool:
    """Whether ``data`` is a binary file: a known signature, or (in its first few kilobytes) more control
    characters than text holds. NUL, which no text holds, is looked for in the whole text once it is decoded."""
    if data.startswith(_BINARY_SIGNATURES):
        return True
    # Bytes that do not decode (such as a character cut at the sample's end) are left out of the sample.
    sample = data[:_SAMPLE_BYTES].decode(encoding or "utf-8", errors="ignore")
    controls = sum(1 for char in sample if unicodedata.category(char) == "Cc" and char not in _TEXT_CONTROLS)
    return controls > len(sample) * _MAX_CONTROL_SHARE


def decode_document(data: bytes, filename: str) -> str:
    """The text of an uploaded .txt or .md file, with line ends made ``\\n``.

    UTF-8 (with or without a byte order mark); UTF-16 or UTF-32 when a byte order mark says so. Anything else
    (another encoding, a binary file, an empty file) raises :class:`DocumentError` rather than being guessed at:
    a wrong guess would be stored, embedded and recalled as garbage. The name and size are checked again (see
    :func:`check_upload`), for a caller that did not."""
    check_upload(filename, len(data))
    shown = _shown(filename)
    binary = DocumentError(f"{shown} looks like a binary file, not text: upload a plain .txt or .md file.")
    encoding = next((codec for bom, codec in _BOMS if data.startswith(bom)), None)
    if _looks_binary(data, encoding):
        raise binary
    try:
        text = data.decode(encoding or "utf-8")
    except UnicodeDecodeError:
        raise DocumentError(
            f"{shown} is not UTF-8 text: save it as UTF-8 (most editors offer this under “Save as”) and try again."
        ) from None
    if "\x00" in text:  # UTF-16 without a byte order mark, or binary data after a text-like start
        raise binary
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    if not _visible(text):
        raise DocumentError(f"{shown} is empty: there is nothing in it to learn.")
    return text


def _visible(text: str) -> bool:
    """Whether ``text`` shows anything: a character that is not whitespace, a format character or a blank."""
    return any(not char.isspace() and char not in _BLANKS and unicodedata.category(char) != "Cf" for char in text)


# --- chunking -------------------------------------------------------------------------------------------------


def _without_front_matter(text: str) -> str:
    """``text`` with its front matter (see :data:`_FRONT_MATTER`) left out, and its title, if it gives one, made
    the document's heading. Read as text, the block would become the heading every passage is filed under."""
    opening, _newline, rest = text.partition("\n")
    fence = opening.rstrip(" \t")
    if fence not in _FRONT_MATTER:
        return text
    first_key, closing = _FRONT_MATTER[fence]
    end = closing.search(rest)
    if end is None or not first_key.match(rest):
        return text
    body = rest[end.end() :]
    title = _FRONT_MATTER_TITLE.search(rest, 0, end.start())
    heading = _heading_title(title.group(1).strip().strip("\"'")) if title else ""
    return f"# {heading}\n{body}" if heading else body


@dataclass(slots=True)
class _Section:
    path: tuple[str, ...]  # the headings it sits under, outermost first
    paragraphs: list[str]


@dataclass(frozen=True, slots=True)
class _Piece:
    """A sentence (or a whole paragraph, or part of an overlong sentence) and the paragraph it belongs to."""

    text: str
    paragraph: int
    words: int


def _measure(text: str) -> int:
    """Size in words; a Chinese, Japanese or Korean character counts as one, and a long run of other text without
    spaces as one word per few characters."""
    wide = len(_WIDE.findall(text))
    return max(len(text.split()), math.ceil((len(text) - wide) / _CHARS_PER_WORD) + wide)


def _heading_title(raw: str) -> str:
    return " ".join(raw.strip(_HEADING_DECORATION).split())


def _could_be_title(line: str) -> bool:
    return len(line.split()) <= _MAX_SETEXT_WORDS and not _BLOCK_START.match(line)


def _sections(text: str) -> list[_Section]:
    """The document as sections (one per heading) of paragraphs: a paragraph's wrapped lines are joined, while
    list items, table rows and quotes stay lines of their own; headings inside code fences are text."""
    sections = [_Section((), [])]
    headings: list[tuple[int, str]] = []
    # The paragraph being read: its lines, each as the parts (wrapped lines) joined into it when it is done.
    block: list[list[str]] = []
    fence: str | None = None

    def close_block() -> None:
        if block:
            paragraph = "\n".join(" ".join(parts) for parts in block)
            if _visible(paragraph):  # a line of zero-width spaces is no passage
                sections[-1].paragraphs.append(paragraph)
            block.clear()

    def open_section(level: int, title: str) -> None:
        close_block()
        while headings and headings[-1][0] >= level:
            headings.pop()
        if title:
            headings.append((level, title))
        sections.append(_Section(tuple(title for _, title in headings), []))

    for line in text.split("\n"):
        if fence is not None:
            if line.strip().startswith(fence):
                fence = None
                close_block()
            elif line.strip():
                block.append([line.rstrip()])
            continue
        if fenced := _FENCE.match(line):
            close_block()
            fence = fenced.group(1)[:3]
            continue
        if not line.strip():
            close_block()
            continue
        if heading := _ATX_HEADING.match(line):
            title = _heading_title(heading.group(2) or "")
            if _measure(title) <= _MAX_HEADING_WORDS:
                open_section(len(heading.group(1)), title)
            else:
                close_block()
                sections[-1].paragraphs.append(title)
            continue
        # A short line underlined with === or --- is a heading; a long paragraph so underlined is text and a rule.
        # (Each part holds a word at least: one of more parts than a title's words is no title.)
        underline = _SETEXT_UNDERLINE.match(line)
        if underline and len(block) == 1 and len(block[0]) <= _MAX_SETEXT_WORDS and _could_be_title(" ".join(block[0])):
            title = _heading_title(" ".join(block.pop()))
            open_section(1 if underline.group(1).startswith("=") else 2, title)
            continue
        if _THEMATIC_BREAK.match(line):
            close_block()
            continue
        words = " ".join(line.split())
        if block and not _BLOCK_START.match(line):
            block[-1].append(words)
        else:
            block.append([words])
    close_block()
    return [section for section in sections if section.paragraphs]


def _split_long(text: str, max_words: int) -> list[str]:
    """``text`` (one sentence) in pieces of at most ``max_words`` words, cut between words when it has any."""
    words = text.split()
    if _WIDE.search(text):
        return _split_wide(words, max_words)
    limit = max_words * _CHARS_PER_WORD  # characters a piece may have (see _measure)
    if len(words) > 1 and max(map(len, words)) <= limit:
        # ends[k] - 1: the length of the first k words joined by spaces; each piece takes as many words as fit.
        ends = [0, *itertools.accumulate(len(word) + 1 for word in words)]
        pieces: list[str] = []
        start = 0
        while start < len(words):
            stop = min(start + max_words, bisect.bisect_right(ends, ends[start] + limit + 1, start) - 1)
            pieces.append(" ".join(words[start:stop]))
            start = stop
        return pieces
    parts = (text[start : start + limit].strip() for start in range(0, len(text), limit))
    return [part for part in parts if part]


def _split_wide(words: list[str], max_words: int) -> list[str]:
    """``words`` (a sentence holding Chinese, Japanese or Korean) in pieces of at most ``max_words`` words as
    :func:`_measure` counts them: cut between words where a piece still fits, a word longer than a piece (Chinese
    and Japanese put no spaces between words) between characters."""
    pieces: list[str] = []
    piece: list[str] = []
    size = 0

    def close() -> None:
        nonlocal size
        if piece:
            pieces.append(" ".join(piece))
            piece.clear()
            size = 0

    for word in words:
        wide = len(_WIDE.findall(word))
        cost = wide + math.ceil((len(word) - wide + 1) / _CHARS_PER_WORD)  # with its space: never below _measure
        if cost > max_words:
            close()
            pieces.extend(word[start : start + max_words] for start in range(0, len(word), max_words))
            continue
        if size + cost > max_words:
            close()
        piece.append(word)
        size += cost
    close()
    return pieces


def _pieces(paragraph: str, index: int, max_words: int) -> list[_Piece]:
    """Paragraph number ``index`` of a section as pieces: itself when it fits in a chunk, else its sentences
    (cut further when longer than a chunk)."""
    words = _measure(paragraph)
    if words <= max_words:
        return [_Piece(paragraph, index, words)]
    pieces: list[_Piece] = []
    start = 0
    sentences = []
    for match in _SENTENCE_END.finditer(paragraph):
        sentences.append(paragraph[start : match.end()].strip())
        start = match.end()
    sentences.append(paragraph[start:].strip())
    for sentence in filter(None, sentences):
        words = _measure(sentence)
        if words <= max_words:
            pieces.append(_Piece(sentence, index, words))
        else:
            pieces.extend(_Piece(part, index, _measure(part)) for part in _split_long(sentence, max_words))
    return pieces


def _join(pieces: list[_Piece]) -> str:
    """Pieces of one paragraph joined by a space; paragraphs (and list items) by a line break."""
    parts: list[str] = []
    for i, piece in enumerate(pieces):
        if i:
            before = pieces[i - 1]
            if piece.paragraph != before.paragraph:
                parts.append("\n")
            elif not _UNSPACED.match(before.text[-1:]):  # Chinese and Japanese put no space between sentences
                parts.append(" ")
        parts.append(piece.text)
    return "".join(parts)


def _carried(chunk: list[_Piece], next_words: int, max_words: int, overlap_words: int) -> tuple[list[_Piece], int]:
    """What the chunk after ``chunk`` starts with, and its size: the last pieces of ``chunk`` (``overlap_words``
    at most), fewer if the next piece (``next_words``) would not fit after them."""
    start, words = len(chunk), 0
    while start and words + chunk[start - 1].words <= overlap_words:
        start -= 1
        words += chunk[start].words
    while start < len(chunk) and words + next_words > max_words:
        words -= chunk[start].words
        start += 1
    return chunk[start:], words


def _pack(paragraphs: Iterable[list[_Piece]], max_words: int, overlap_words: int) -> Iterator[list[_Piece]]:
    """A section's paragraphs (as their pieces) packed into chunks of at most ``max_words`` words, yielded as
    they are made. A paragraph that fits in a chunk is not split across two. Each chunk after the first starts
    with the last sentences (``overlap_words`` at most) of the one before, so a passage cut mid-paragraph keeps
    what its first sentence refers to. Each piece is looked at a bounded number of times: linear time."""
    chunk: list[_Piece] = []
    size = 0  # words in ``chunk``
    fresh = False  # whether ``chunk`` holds new pieces (not only the end of the chunk before)
    for pieces in paragraphs:
        paragraph_words = sum(piece.words for piece in pieces)
        for position, piece in enumerate(pieces):
            # A paragraph that would not fit in what is left, but fits in a chunk of its own, starts one.
            moves_whole = position == 0 and size + paragraph_words > max_words >= paragraph_words
            if fresh and (moves_whole or size + piece.words > max_words):
                yield chunk
                chunk, size = _carried(chunk, piece.words, max_words, overlap_words)
                fresh = False
            chunk.append(piece)
            size += piece.words
            fresh = True
    if fresh:
        yield chunk


def _heading_prefix(path: tuple[str, ...], max_words: int) -> str:
    """What the passages of a section under ``path`` start with (``"Setting > The Harbour: "``), of at most
    ``max_words`` words: when the whole path is longer, its outermost headings are left out (``"… > The Harbour: "``),
    and when even the innermost is, there is none."""
    for start in range(len(path)):
        prefix = " > ".join(("…",) * bool(start) + path[start:]) + ": "
        if _measure(prefix) <= max_words:
            return prefix
    return ""


def chunk_document(text: str, *, max_words: int = 180, overlap_words: int = 30) -> list[str]:
    """Passages of ``text`` to embed, in document order, each prefixed with its heading path
    (``"Setting > The Harbour: …"``, at most half of ``max_words``) and of at most ``max_words`` words with it. Raises
    :class:`DocumentError` as soon as the document would make more than :data:`MAX_CHUNKS` passages.

    Time linear in the text's length (it runs on documents of megabytes; call it off the event loop)."""
    if max_words < 1 or overlap_words < 0:
        raise ValueError("max_words must be positive and overlap_words not negative")
    chunks: list[str] = []
    for section in _sections(_without_front_matter(text)):
        prefix = _heading_prefix(section.path, max_words // 2)
        words = max_words - _measure(prefix)  # the headings are read (and embedded) with the passage
        overlap = min(overlap_words, words // 2)
        paragraphs = (_pieces(paragraph, i, words) for i, paragraph in enumerate(section.paragraphs))
        for packed in _pack(paragraphs, words, overlap):
            body = _join(packed).strip()
            if not body:
                continue
            if len(chunks) == MAX_CHUNKS:
                raise DocumentError(
                    f"This document is too long: it would make more than {MAX_CHUNKS:,} passages. "
                    "Split it into several smaller documents."
                )
            chunks.append(prefix + body)
    return chunks
