"""Everything stored about one user, found by following the schema's foreign keys to ``users``.

Export reads it and erasure relies on it (deleting the user row cascades), so a table added later is covered
by both without a change here.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import Table, case, delete, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import (
    Base,
    BotOpinion,
    BotOpinionSource,
    Conversation,
    FactAssociation,
    Memory,
    Message,
    ReplyAlternative,
    User,
    UserFact,
)
from bot.db.repositories._dialect import dialect_name
from bot.db.repositories.memories import MemoryRepository
from bot.domain.extraction import own_words, without_quote_of
from bot.domain.images import still_attached
from bot.domain.memory_text import context_line, edited_memory
from bot.domain.opinions import topics_said

# Columns that hold vectors: derived from text that is exported anyway, and useless to a person.
_VECTOR_COLUMNS = {"embedding"}
# What the word search indexes: a memory's speaker, text and day, exported anyway (its text with others' words).
_DERIVED = {(Memory.__tablename__, "search_text")}
# Columns of the person's rows that hold what others said: a memory's context is the turn before it, which is
# often someone else's message, or Hearth's reply to someone else. The person's own turns are exported anyway.
_OTHERS_WORDS = {(Memory.__tablename__, "context")}


@dataclass(frozen=True, slots=True)
class PastTurn:
    """A turn as it was before it was deleted or edited: the stored message, its conversation, what it said, and the
    links of the images that went with it (all it carried when deleted; those an edit took off)."""

    message_id: int
    conversation_id: int
    content: str
    images_gone: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ForgottenFact:
    """A fact erased for good: its text, and how many other versions of it (its history) went with it."""

    content: str
    other_versions: int


@dataclass(frozen=True, slots=True)
class QuotingMemory:
    id: int
    speaker_name: str | None
    content: str


def _plain(value: Any) -> Any:
    """A column value as JSON can hold it."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return None
    if hasattr(value, "tolist"):
        return None
    return value


def _exported(table_name: str, column: str) -> bool:
    return column not in _VECTOR_COLUMNS and (table_name, column) not in _OTHERS_WORDS | _DERIVED


def _own_words_only(found: dict[str, list[dict[str, Any]]]) -> None:
    """The person's turns, and their memories, as they said them: the message they replied to, or forwarded, is
    kept after theirs (for the model), but it is someone else's, so it is left out, a mark saying it was there."""
    turns = {row["id"] for row in found.get(Message.__tablename__, []) if row.get("role") == "user"}
    for row in found.get(Message.__tablename__, []):
        if row["id"] in turns:
            row["content"] = own_words(str(row["content"]))
    for row in found.get(Memory.__tablename__, []):
        if row.get("kind") == "message" and row.get("message_id") in turns:
            row["content"] = own_words(str(row["content"]))


def _user_columns(table: Table) -> list[Any]:
    return [column for column in table.columns if any(fk.column.table.name == "users" for fk in column.foreign_keys)]


class PrivacyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def rows_about(self, user_id: int) -> dict[str, list[dict[str, Any]]]:
        """Table name → the rows that reference the user (every column but vectors, the word index's text and others'
        words, their turns without what they reply to or forward), and the user row itself."""
        found: dict[str, list[dict[str, Any]]] = {}
        for table in Base.metadata.sorted_tables:
            if table.name == User.__tablename__:
                condition = table.c.id == user_id
            elif columns := _user_columns(table):
                condition = or_(*(column == user_id for column in columns))
            else:
                continue
            rows = (await self.session.execute(select(table).where(condition).order_by(table.c.id))).mappings().all()
            if rows:
                found[table.name] = [
                    {key: _plain(value) for key, value in row.items() if _exported(table.name, key)} for row in rows
                ]
        _own_words_only(found)
        # A link joins one of the user's facts to another member's: the export names the user's own fact only.
        own = select(UserFact.id).where(UserFact.user_id == user_id)
        links = (
            await self.session.execute(
                select(
                    FactAssociation.id,
                    case(
                        (FactAssociation.fact_id_1.in_(own), FactAssociation.fact_id_1), else_=FactAssociation.fact_id_2
                    ).label("fact_id"),
                    FactAssociation.association_type,
                    FactAssociation.strength,
                    FactAssociation.discovered_at,
                    FactAssociation.created_at,
                )
                .where(or_(FactAssociation.fact_id_1.in_(own), FactAssociation.fact_id_2.in_(own)))
                .order_by(FactAssociation.id)
            )
        ).mappings()
        if linked := [{key: _plain(value) for key, value in row.items()} for row in links]:
            found[FactAssociation.__tablename__] = linked
        # The answers a regenerated reply to the user got: rows of their messages, without a user column.
        alternatives = (
            (
                await self.session.execute(
                    select(ReplyAlternative.__table__)
                    .where(ReplyAlternative.message_id.in_(select(Message.id).where(Message.user_id == user_id)))
                    .order_by(ReplyAlternative.id)
                )
            )
            .mappings()
            .all()
        )
        if alternatives:
            found[ReplyAlternative.__tablename__] = [{k: _plain(v) for k, v in row.items()} for row in alternatives]
        return found

    async def delete_fact(self, user_id: int, fact_id: int) -> ForgottenFact | None:
        """Delete one of the user's facts for good with every version of it: those it replaced, kept as its
        history, and any that replaced it (their memories and associations go with them, by cascade). What went,
        or None when the user has no such fact."""
        content = await self.session.scalar(
            select(UserFact.fact_content).where(UserFact.id == fact_id, UserFact.user_id == user_id)
        )
        if content is None:
            return None
        chain, frontier = {fact_id}, {fact_id}
        while frontier:  # a chain is a few rows long: walk it both ways, a step at a time
            linked = await self.session.execute(
                select(UserFact.id, UserFact.superseded_by).where(
                    UserFact.user_id == user_id,
                    or_(UserFact.superseded_by.in_(frontier), UserFact.id.in_(frontier)),
                )
            )
            found = {int(i) for row in linked.all() for i in row if i is not None}
            frontier = found - chain
            chain |= found
        await self.session.execute(delete(UserFact).where(UserFact.id.in_(sorted(chain)), UserFact.user_id == user_id))
        return ForgottenFact(str(content), len(chain) - 1)

    async def conversations_of(self, user_id: int) -> list[int]:
        """Conversations the user said something in (their DMs, and shared channels)."""
        statement = select(Message.conversation_id).where(Message.user_id == user_id, Message.role == "user")
        return sorted(set((await self.session.scalars(statement.distinct())).all()))

    async def memories_quoting(self, user_id: int, conversation_ids: Sequence[int]) -> list[QuotingMemory]:
        """Other people's memories whose context is one of the user's messages, or one of Hearth's replies to
        them (which often repeat their words): the turn before theirs.

        Such a context was written as ``context_line(speaker, text)``, so it ends with the message's text as
        ``context_line`` cuts it; erasing the user must take it out of those memories and their vectors."""
        if not conversation_ids:
            return []
        said = await self.session.scalars(
            select(Message.content).where(
                Message.user_id == user_id,
                Message.role.in_(("user", "assistant")),
                Message.conversation_id.in_(conversation_ids),
            )
        )
        others = or_(Memory.user_id.is_(None), Memory.user_id != user_id)
        return await self._quoting(conversation_ids, said.all(), others)

    async def unquote(self, turns: Sequence[PastTurn]) -> bool:
        """Take the words of ``turns`` (deleted, or edited since) out of where they were quoted: the context of
        the memory after each (dropped with its vector) and the summaries of their conversations. True when a
        memory lost its vector, for the embedding worker to remake."""
        conversation_ids = sorted({turn.conversation_id for turn in turns})
        quoting = await self._quoting(conversation_ids, [turn.content for turn in turns], None)
        await self.drop_contexts(quoting)
        await self.delete_summaries(conversation_ids)
        return bool(quoting)

    async def _quoting(
        self, conversation_ids: Sequence[int], texts: Sequence[str], whose: Any | None
    ) -> list[QuotingMemory]:
        endings = {context_line(None, said) for said in texts if said.strip()}
        if not conversation_ids or not endings:
            return []
        statement = select(Memory.id, Memory.speaker_name, Memory.content, Memory.context).where(
            Memory.conversation_id.in_(conversation_ids), Memory.context.is_not(None)
        )
        candidates = await self.session.execute(statement if whose is None else statement.where(whose))
        return [
            QuotingMemory(row.id, row.speaker_name, row.content)
            for row in candidates.all()
            if any(str(row.context).endswith(ending) for ending in endings)
        ]

    async def unquote_replies_to(self, user_id: int) -> list[PastTurn]:
        """Others' turns that reply to one of the user's stored messages keep it after their own words (see
        bot/discord/people.py): it goes from them and from their memories (embedded again), a mark in its place.
        Returns those turns as they were, for what quoted them in turn to be taken out too (:meth:`unquote`)."""
        theirs = await self.session.execute(
            select(Conversation.channel_id, Message.content, Message.image_urls)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Message.user_id == user_id, Message.role == "user")
        )
        said_in: dict[int, list[str]] = {}
        shown_in: dict[int, list[str]] = {}
        for channel_id, content, images in theirs.all():  # a reply is in the channel of the message it replies to
            said_in.setdefault(int(channel_id), []).append(str(content))
            shown_in.setdefault(int(channel_id), []).extend(str(url) for url in images or ())
        whose = or_(Message.user_id.is_(None), Message.user_id != user_id)
        return await self._unquote_replies(said_in, shown_in, whose)

    async def unquote_replies_to_turns(self, turns: Sequence[PastTurn]) -> list[PastTurn]:
        """As :meth:`unquote_replies_to`, for the replies to ``turns`` (deleted, or edited since)."""
        found = await self.session.execute(
            select(Conversation.id, Conversation.channel_id).where(
                Conversation.id.in_(sorted({turn.conversation_id for turn in turns}))
            )
        )
        channels = {int(conversation_id): int(channel_id) for conversation_id, channel_id in found.all()}
        said_in: dict[int, list[str]] = {}
        shown_in: dict[int, list[str]] = {}
        for turn in turns:
            if turn.conversation_id in channels:
                said_in.setdefault(channels[turn.conversation_id], []).append(turn.content)
                shown_in.setdefault(channels[turn.conversation_id], []).extend(turn.images_gone)
        gone = [turn.message_id for turn in turns]
        return await self._unquote_replies(said_in, shown_in, Message.id.not_in(gone))

    async def _unquote_replies(
        self, said_in: dict[int, list[str]], shown_in: dict[int, list[str]], whose: Any
    ) -> list[PastTurn]:
        """The turns (of those ``whose`` selects) in these channels that quote one of the texts said there, or carry
        one of the images shown there (a reply keeps the images of the message it replies to among its own), with the
        quote and those images taken out of them and of their memories; they as they were."""
        channels = sorted(set(said_in) | {channel for channel, links in shown_in.items() if links})
        if not channels:
            return []
        replies = await self.session.execute(
            select(Message.id, Message.conversation_id, Message.content, Message.image_urls, Conversation.channel_id)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(
                Conversation.channel_id.in_(channels),
                Message.role == "user",
                whose,
                Message.content.contains("[in reply to "),
            )
        )
        memories = MemoryRepository(self.session)
        changed: list[PastTurn] = []
        for row in replies.all():
            channel, content = int(row.channel_id), str(row.content)
            unquoted = without_quote_of(content, said_in.get(channel, []))
            links = [str(url) for url in row.image_urls or ()]
            theirs = set(still_attached(links, shown_in.get(channel, [])))
            if unquoted is None and not theirs:
                continue
            now = content if unquoted is None else unquoted
            values: dict[str, Any] = {"content": now}
            kept = [index for index in range(len(links)) if index not in theirs] if theirs else None
            if kept is not None:
                values |= {"image_urls": [links[index] for index in kept], "has_images": bool(kept)}
                if not kept:
                    values["images_pending"] = False
            await self.session.execute(update(Message).where(Message.id == row.id).values(**values))
            memory = (
                await self.session.execute(
                    select(Memory.id, Memory.content, Memory.speaker_name, Memory.created_at).where(
                        Memory.message_id == row.id, Memory.kind == "message"
                    )
                )
            ).first()
            if memory is not None:  # the turn's text, then its images' marks
                await memories.rewrite(
                    memory.id,
                    edited_memory(memory.content, content, now, kept),
                    created_at=memory.created_at,
                    speaker_name=memory.speaker_name,
                )
            changed.append(PastTurn(int(row.id), int(row.conversation_id), content))
        return changed

    async def edit_user_turn(
        self, discord_message_id: int, content: str, images: Sequence[str] | None = None
    ) -> PastTurn | None:
        """Give the person's turn stored for this Discord message its new text, and its memory too (with the marks
        of its images kept, its vector cleared for the embedding worker to remake); ``images``: the links of the
        images the message now carries (None: unknown, those kept stay), the others going from the turn and from
        its memory. The turn as it was, or None when none is stored or it is unchanged."""
        found = (
            await self.session.execute(
                select(Message.id, Message.conversation_id, Message.content, Message.image_urls).where(
                    Message.discord_message_id == discord_message_id, Message.role == "user"
                )
            )
        ).first()
        if found is None:
            return None
        stored = [str(url) for url in found.image_urls or ()]
        kept = None if images is None else still_attached(stored, images)
        removed = kept is not None and len(kept) < len(stored)
        if found.content == content and not removed:
            return None
        values: dict[str, Any] = {"content": content}
        if kept is not None and removed:
            values |= {"image_urls": [stored[index] for index in kept], "has_images": bool(kept)}
            if not kept:
                values["images_pending"] = False
        await self.session.execute(update(Message).where(Message.id == found.id).values(**values))
        memories = MemoryRepository(self.session)
        memory = (
            await self.session.execute(
                select(Memory.id, Memory.content, Memory.speaker_name, Memory.created_at).where(
                    Memory.message_id == found.id, Memory.kind == "message"
                )
            )
        ).first()
        if memory is not None:
            # A turn's memory is its text, then a line per image it carried ("[image: …]"): those it keeps stay.
            await memories.rewrite(
                memory.id,
                edited_memory(memory.content, found.content, content, kept if removed else None),
                created_at=memory.created_at,
                speaker_name=memory.speaker_name,
            )
        gone = tuple(url for index, url in enumerate(stored) if index not in kept) if kept is not None else ()
        return PastTurn(int(found.id), int(found.conversation_id), str(found.content), gone)

    async def delete_turns(self, discord_message_ids: Sequence[int]) -> list[PastTurn]:
        """Delete the turns stored for these Discord messages: people's, and Hearth's replies (known by the
        message that shows a reply's end, or by any other of the messages showing a reply that took several),
        their memories and a reply's alternatives with them (by cascade); returns what they were."""
        if not discord_message_ids:
            return []
        ids = list(discord_message_ids)
        shown_in = Message.discord_message_id.in_(ids)
        in_parts = await self._replies_with_parts(ids)
        result = await self.session.execute(
            delete(Message)
            .where(
                or_(shown_in, Message.id.in_(in_parts)) if in_parts else shown_in,
                Message.role.in_(("user", "assistant")),
            )
            .returning(Message.id, Message.conversation_id, Message.content, Message.image_urls)
        )
        return [
            PastTurn(
                int(row.id), int(row.conversation_id), str(row.content), tuple(str(u) for u in row.image_urls or ())
            )
            for row in result.all()
        ]

    async def _replies_with_parts(self, discord_message_ids: Sequence[int]) -> list[int]:
        """The replies shown in several Discord messages, one of which is among ``discord_message_ids``. A reply's
        messages are kept in the order they were posted, so its last one (``discord_message_id``, indexed) comes
        no sooner than any other: only the replies after the earliest of these ids are looked at."""
        parts = Message.discord_part_ids
        count = (
            func.jsonb_array_length(parts)
            if dialect_name(self.session) == "postgresql"
            else func.json_array_length(parts)
        )
        rows = await self.session.execute(
            select(Message.id, parts).where(
                Message.discord_message_id > min(discord_message_ids), Message.role == "assistant", count > 1
            )
        )
        wanted = set(discord_message_ids)
        return [int(row.id) for row in rows.all() if wanted.intersection(int(part) for part in row.discord_part_ids)]

    async def drop_contexts(self, memories: Sequence[QuotingMemory]) -> None:
        """Forget the context of these memories, and their vectors (made with it): the embedding worker re-makes
        them from the memories' own text alone. On PostgreSQL a row the worker is embedding right now is locked;
        this waits for it, then clears the vector it stored."""
        if memories:
            await self.session.execute(
                update(Memory)
                .where(Memory.id.in_([memory.id for memory in memories]))
                .values(context=None, embedding=None, embedding_model=None)
            )

    async def delete_summaries(self, conversation_ids: Sequence[int]) -> int:
        """Summaries of these conversations (written by the model from everyone's words, the user's included)."""
        if not conversation_ids:
            return 0
        result = await self.session.execute(
            delete(Memory).where(Memory.kind == "summary", Memory.conversation_id.in_(conversation_ids))
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def delete_opinions_from(self, user_id: int) -> int:
        """Delete the guild opinions whose topic may be the user's words: formed or reinforced in a talk they
        spoke in (``bot_opinion_sources``), or whose topic they said in so many words in that guild (or
        Hearth said, answering them) — which also covers opinions formed before sources were recorded. Their
        DM opinions go with the user row (``dm_user_id`` cascades). Returns how many went."""
        doomed = set(
            (
                await self.session.scalars(
                    select(BotOpinionSource.opinion_id).where(BotOpinionSource.user_id == user_id)
                )
            ).all()
        )
        said = await self.session.execute(
            select(Conversation.guild_id, Message.content)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Message.user_id == user_id, Conversation.guild_id.is_not(None))
        )
        texts_by_guild: dict[int, list[str]] = {}
        for row in said.all():
            texts_by_guild.setdefault(int(row.guild_id or 0), []).append(str(row.content))
        for guild_id, texts in texts_by_guild.items():
            topics = dict(
                (
                    await self.session.execute(
                        select(BotOpinion.topic, BotOpinion.id).where(BotOpinion.guild_id == guild_id)
                    )
                ).all()
            )
            doomed.update(topics[topic] for topic in topics_said(texts, topics))
        if not doomed:
            return 0
        await self.session.execute(delete(BotOpinion).where(BotOpinion.id.in_(sorted(doomed))))
        return len(doomed)

    async def purge_word_index(self) -> None:
        """Leave no deleted row's words in the word index. SQLite: rewrite the memories' word index (FTS5
        ``optimize``): a deleted row's words stay in the old index segments until they are merged. PostgreSQL:
        fold the word counts' pending changes (an erased memory's words are among them) into the counts, which
        drop a word at zero."""
        if dialect_name(self.session) == "sqlite":
            await self.session.execute(text("INSERT INTO memories_fts (memories_fts) VALUES ('optimize')"))
        else:
            await self.session.execute(text("SELECT memory_words_fold()"))

    async def checkpoint(self) -> None:
        """SQLite: copy the write-ahead log into the database file and empty it (outside a transaction). The
        log holds earlier versions of the pages an erasure rewrote, erased text included, until then."""
        if dialect_name(self.session) == "sqlite":
            await self.session.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
