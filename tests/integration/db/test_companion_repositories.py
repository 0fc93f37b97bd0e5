"""Facts, relationships, mood, opinions, styles and the learner's marker, through real rows on both backends."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import bindparam, func, select, text
from sqlalchemy.engine import URL

from bot.db import migrations
from bot.db.engine import Database
from bot.db.models import (
    BotOpinion,
    BotOpinionSource,
    BotState,
    Conversation,
    FactAssociation,
    MoodHistory,
    UserCommunicationStyle,
    UserFact,
    UserRelationship,
)
from bot.db.repositories.conversations import ConversationRepository
from bot.db.repositories.facts import FactRepository, NewFact
from bot.db.repositories.guilds import GuildRepository
from bot.db.repositories.learning import LearningRepository
from bot.db.repositories.moods import MoodRepository
from bot.db.repositories.opinions import OpinionRepository
from bot.db.repositories.relationships import Exchange, RelationshipRepository
from bot.db.repositories.speaker_state import SpeakerState, SpeakerStateRepository
from bot.db.repositories.styles import StyleRepository
from bot.db.repositories.users import UserRepository
from bot.db.types import UTCDateTime
from bot.domain.mood import Mood
from bot.domain.opinions import Opinion
from bot.domain.place import StatePlace
from bot.domain.relationship import Relationship
from bot.domain.style import CommunicationStyle
from tests.conftest import EMBEDDING_DIMENSION
from tests.support.migrated import database_at

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def _user(db: Database, discord_id: int, name: str) -> int:
    async with db.session() as session:
        user = await UserRepository(session).upsert(discord_id=discord_id, username=name, display_name=None, seen_at=T0)
        return user.id


async def _guild(db: Database, discord_id: int, name: str, **settings: object) -> int:
    async with db.session() as session:
        repo = GuildRepository(session)
        guild = await repo.upsert(discord_id=discord_id, name=name)
        if settings:
            await repo.update_settings(guild.id, dict(settings))
        return guild.id


def _fact(user_id: int, content: str, *, guild_id: int | None = None, scope: str | None = None, **kw: Any) -> NewFact:
    """A fact learned at T0: in the guild when ``guild_id`` is given, else in DMs (unless ``scope`` says)."""
    base = NewFact(
        user_id=user_id,
        fact_type="hobby",
        content=content,
        scope=scope or ("guild" if guild_id is not None else "dm"),
        guild_id=guild_id,
        learned_at=T0,
    )
    return replace(base, **kw)


async def _add(db: Database, fact: NewFact) -> int:
    async with db.session() as session:
        return await FactRepository(session).add(fact, None, None)


# --- facts ---------------------------------------------------------------------------------------------------


async def test_usable_facts_follow_the_place_they_were_learned(db: Database) -> None:
    ana, bo = await _user(db, 1, "ana"), await _user(db, 2, "bo")
    guild_a, guild_b = await _guild(db, 100, "A"), await _guild(db, 200, "B")
    ids = {
        "in A": await _add(db, _fact(ana, "climbs in A", guild_id=guild_a)),
        "in B": await _add(db, _fact(ana, "plays chess in B", guild_id=guild_b)),
        "dm": await _add(db, _fact(ana, "is anxious about exams")),
        "global": await _add(db, _fact(ana, "is called Ana", scope="global")),
        "expires later": await _add(
            db, _fact(ana, "is on holiday", guild_id=guild_a, expiry_date=T0 + timedelta(days=3))
        ),
        "expired": await _add(db, _fact(ana, "has a cold", guild_id=guild_a, expiry_date=T0 - timedelta(hours=1))),
        "expires now": await _add(db, _fact(ana, "is at lunch", guild_id=guild_a, expiry_date=T0)),
        "superseded": await _add(db, _fact(ana, "lives in Porto", guild_id=guild_a)),
        "retracted dm": await _add(db, _fact(ana, "hates cats")),
    }
    await _add(db, _fact(bo, "bo climbs in A", guild_id=guild_a))
    async with db.session() as session:
        repo = FactRepository(session)
        await repo.supersede(ids["superseded"], at=T0 - timedelta(days=1))
        await repo.supersede(ids["retracted dm"], at=T0 - timedelta(days=1))

    async with db.session() as session:
        repo = FactRepository(session)
        in_a = {f.id for f in await repo.usable(ana, guild_id=guild_a, now=T0)}
        in_b = {f.id for f in await repo.usable(ana, guild_id=guild_b, now=T0)}
        in_dm = {f.id for f in await repo.usable(ana, guild_id=None, now=T0)}
        in_unknown_guild = {f.id for f in await repo.usable(ana, guild_id=guild_b + 99, now=T0)}
        later_in_a = {f.id for f in await repo.usable(ana, guild_id=guild_a, now=T0 + timedelta(days=4))}
    assert in_a == {ids["in A"], ids["global"], ids["expires later"]}
    assert in_b == {ids["in B"], ids["global"]}
    assert in_dm == {ids["dm"], ids["global"]}
    assert in_unknown_guild == {ids["global"]}
    assert later_in_a == {ids["in A"], ids["global"]}


async def test_a_fact_round_trips_with_its_embedding(db: Database) -> None:
    ana = await _user(db, 1, "ana")
    guild = await _guild(db, 100, "A")
    vector = np.linspace(-1, 1, EMBEDDING_DIMENSION, dtype=np.float32)
    fact = _fact(
        ana,
        "works as a nurse",
        guild_id=guild,
        fact_type="work",
        confidence=0.9,
        importance=0.7,
        temporal_relevance="current",
        expiry_date=T0 + timedelta(days=30),
        source="conversation",
        extracted_from_message_id=42,
        extraction_context="I'm a nurse",
    )
    async with db.session() as session:
        repo = FactRepository(session)
        with_vector = await repo.add(fact, vector, "mini-lm")
        without = await repo.add(_fact(ana, "likes tea", scope="global"), None, "ignored")
    async with db.session() as session:
        rows = {row.id: row for row in await FactRepository(session).history(ana)}
        models = dict((await session.execute(select(UserFact.id, UserFact.embedding_model))).all())
        context = await session.scalar(select(UserFact.extraction_context).where(UserFact.id == with_vector))
    row = rows[with_vector]
    assert (row.user_id, row.fact_type, row.content, row.scope, row.guild_id) == (
        ana,
        "work",
        "works as a nurse",
        "guild",
        guild,
    )
    assert (row.confidence, row.importance, row.temporal_relevance, row.source) == (0.9, 0.7, "current", "conversation")
    assert (row.learned_at, row.expiry_date, row.last_referenced_at) == (T0, T0 + timedelta(days=30), None)
    assert (row.is_active, row.valid_to, row.superseded_by) == (True, None, None)
    assert row.embedding is not None and row.embedding.dtype == np.float32
    np.testing.assert_allclose(row.embedding, vector, rtol=1e-6)
    assert rows[without].embedding is None
    assert models == {with_vector: "mini-lm", without: None}
    assert context == "I'm a nurse"


async def test_supersede_keeps_history_and_refresh_marks_use(db: Database) -> None:
    ana = await _user(db, 1, "ana")
    old = await _add(db, _fact(ana, "lives in Porto", fact_type="location"))
    retracted = await _add(db, _fact(ana, "has a dog", learned_at=T0 + timedelta(minutes=1)))
    async with db.session() as session:
        repo = FactRepository(session)
        new = await repo.add(
            _fact(ana, "lives in Lisbon", fact_type="location", learned_at=T0 + timedelta(days=2)), None, None
        )
        await repo.supersede(old, at=T0 + timedelta(days=2), by=new)
        await repo.supersede(retracted, at=T0 + timedelta(days=3))
        await repo.refresh(new, confidence=0.95, at=T0 + timedelta(days=5))
    async with db.session() as session:
        repo = FactRepository(session)
        history = await repo.history(ana)
        usable = await repo.usable(ana, guild_id=None, now=T0 + timedelta(days=6))
    assert [f.id for f in history] == [old, retracted, new]  # oldest first
    by_id = {f.id: f for f in history}
    assert (by_id[old].is_active, by_id[old].valid_to, by_id[old].superseded_by) == (
        False,
        T0 + timedelta(days=2),
        new,
    )
    assert (by_id[retracted].is_active, by_id[retracted].valid_to, by_id[retracted].superseded_by) == (
        False,
        T0 + timedelta(days=3),
        None,
    )
    assert (by_id[new].is_active, by_id[new].confidence, by_id[new].last_referenced_at) == (
        True,
        0.95,
        T0 + timedelta(days=5),
    )
    assert [f.id for f in usable] == [new]


async def test_forgetting_a_message_takes_its_facts_and_brings_back_what_they_replaced(db: Database) -> None:
    ana = await _user(db, 1, "ana")
    days = [T0 + timedelta(days=n) for n in range(6)]
    porto = await _add(db, _fact(ana, "lives in Porto", fact_type="location", extracted_from_message_id=1))
    lisbon = await _add(db, _fact(ana, "lives in Lisbon", fact_type="location", extracted_from_message_id=2))
    faro = await _add(db, _fact(ana, "lives in Faro", fact_type="location", extracted_from_message_id=3))
    trip = await _add(db, _fact(ana, "is in Rome", expiry_date=days[2], extracted_from_message_id=4))
    home = await _add(db, _fact(ana, "is home", extracted_from_message_id=5))
    cello = await _add(db, _fact(ana, "plays the cello", extracted_from_message_id=6))
    async with db.session() as session:
        repo = FactRepository(session)
        await repo.supersede(porto, at=days[1], by=lisbon)  # Porto → Lisbon → Faro
        await repo.supersede(lisbon, at=days[2], by=faro)
        await repo.supersede(trip, at=days[1], by=home)  # ended by "home", then past its own expiry too

    async def forget(*message_ids: int) -> dict[int, tuple[bool, int | None]]:
        async with db.session() as session:
            await FactRepository(session).forget_learned_from(message_ids, now=days[4])
            rows = await session.execute(select(UserFact.id, UserFact.is_active, UserFact.superseded_by))
            return {row.id: (row.is_active, row.superseded_by) for row in rows.all()}

    # A past fact goes alone: Faro stays current, Porto stays past (its successor is gone).
    assert await forget(2) == {
        porto: (False, None),
        faro: (True, None),
        trip: (False, home),
        home: (True, None),
        cello: (True, None),
    }
    # The current one goes: nothing it replaced is left to come back (Lisbon went); a fact past its expiry
    # stays ended; others are untouched; a message nothing was learned from changes nothing.
    assert await forget(3, 5, 99) == {porto: (False, None), trip: (False, None), cello: (True, None)}

    lyon = await _add(db, _fact(ana, "lives in Lyon", fact_type="location", extracted_from_message_id=7))
    nice = await _add(db, _fact(ana, "lives in Nice", fact_type="location", extracted_from_message_id=8))
    async with db.session() as session:
        await FactRepository(session).supersede(lyon, at=days[3], by=nice)
    after = await forget(8)
    assert after[lyon] == (True, None), "taking back the move to Nice leaves Lyon current again"
    async with db.session() as session:
        usable = await FactRepository(session).usable(ana, guild_id=None, now=days[4])
        valid_to = await session.scalar(select(UserFact.valid_to).where(UserFact.id == lyon))
    assert {f.content for f in usable} == {"plays the cello", "lives in Lyon"} and valid_to is None


async def test_expire_ends_facts_past_their_expiry_once(db: Database) -> None:
    ana = await _user(db, 1, "ana")
    past = await _add(db, _fact(ana, "has a cold", expiry_date=T0 - timedelta(days=1)))
    due = await _add(db, _fact(ana, "is at lunch", expiry_date=T0))
    future = await _add(db, _fact(ana, "is on holiday", expiry_date=T0 + timedelta(days=1)))
    forever = await _add(db, _fact(ana, "likes tea"))
    retracted = await _add(db, _fact(ana, "has the flu", expiry_date=T0 - timedelta(days=2)))
    async with db.session() as session:
        await FactRepository(session).supersede(retracted, at=T0 - timedelta(days=3))
    async with db.session() as session:
        assert await FactRepository(session).expire(T0) == 2
    async with db.session() as session:
        assert await FactRepository(session).expire(T0) == 0
        by_id = {f.id: f for f in await FactRepository(session).history(ana)}
    assert (by_id[past].is_active, by_id[past].valid_to) == (False, T0 - timedelta(days=1))
    assert (by_id[due].is_active, by_id[due].valid_to) == (False, T0)
    assert (by_id[future].is_active, by_id[future].valid_to) == (True, None)
    assert (by_id[forever].is_active, by_id[forever].valid_to) == (True, None)
    assert by_id[retracted].valid_to == T0 - timedelta(days=3)  # its own end is kept
    assert all(f.superseded_by is None for f in by_id.values())


async def test_guild_facts_of_others_are_other_members_current_guild_facts(db: Database) -> None:
    ana, bo, cy = await _user(db, 1, "ana"), await _user(db, 2, "bo"), await _user(db, 3, "cy")
    guild_a, guild_b = await _guild(db, 100, "A"), await _guild(db, 200, "B")
    await _add(db, _fact(ana, "ana climbs", guild_id=guild_a))
    bo_climbs = await _add(db, _fact(bo, "bo climbs", guild_id=guild_a))
    cy_city = await _add(db, _fact(cy, "cy lives in Lisbon", guild_id=guild_a, fact_type="location"))
    await _add(db, _fact(cy, "cy works nights", guild_id=guild_a, fact_type="work"))
    await _add(db, _fact(bo, "bo climbs in B", guild_id=guild_b))
    await _add(db, _fact(bo, "bo's secret hobby", fact_type="hobby"))  # DM
    await _add(db, _fact(bo, "bo paints", scope="global"))
    await _add(db, _fact(cy, "cy had a cold", guild_id=guild_a, expiry_date=T0))
    gone = await _add(db, _fact(cy, "cy ran", guild_id=guild_a))
    async with db.session() as session:
        await FactRepository(session).supersede(gone, at=T0)
    async with db.session() as session:
        repo = FactRepository(session)
        found = await repo.guild_facts_of_others(guild_a, ana, ["hobby", "location"], T0)
        none = await repo.guild_facts_of_others(guild_a, ana, [], T0)
    assert [f.id for f in found] == [bo_climbs, cy_city]
    assert none == []


async def test_associations_are_ordered_pairs_stored_once(db: Database) -> None:
    ana, bo = await _user(db, 1, "ana"), await _user(db, 2, "bo")
    guild = await _guild(db, 100, "A")
    a = await _add(db, _fact(ana, "ana climbs", guild_id=guild))
    b = await _add(db, _fact(bo, "bo climbs", guild_id=guild))
    c = await _add(db, _fact(bo, "bo lives in Lisbon", guild_id=guild, fact_type="location"))
    lone = await _add(db, _fact(bo, "bo paints", guild_id=guild))
    async with db.session() as session:
        repo = FactRepository(session)
        await repo.associate(b, a, kind="shared_interest", strength=0.8, at=T0)
        await repo.associate(a, b, kind="other", strength=0.1, at=T0 + timedelta(days=1))  # ignored
        await repo.associate(c, a, kind="same_city", strength=0.6, at=T0)
        with pytest.raises(ValueError):
            await repo.associate(a, a, kind="self", strength=1.0, at=T0)
    async with db.session() as session:
        repo = FactRepository(session)
        assert await repo.associations_for([b]) == [(a, b, "shared_interest", 0.8)]
        assert await repo.associations_for([a]) == [(a, b, "shared_interest", 0.8), (a, c, "same_city", 0.6)]
        assert await repo.associations_for([lone]) == []
        assert await repo.associations_for([]) == []
        assert await session.scalar(select(func.count()).select_from(FactAssociation)) == 2


# --- relationships, mood, opinions, style --------------------------------------------------------------------


async def test_relationships_round_trip_per_place_with_one_dm_row(db: Database) -> None:
    ana = await _user(db, 1, "ana")
    guild = await _guild(db, 100, "A")
    first = Relationship(score=12.5, interaction_count=1, positive_count=1, last_interaction_at=T0)
    later = Relationship(
        score=40.0,
        interaction_count=2,
        positive_count=1,
        negative_count=1,
        last_interaction_at=T0 + timedelta(days=1),
        nicknames=("Annie", "A"),
        inside_jokes=("the penguin incident",),
    )
    async with db.session() as session:
        repo = RelationshipRepository(session)
        assert await repo.get(ana, None) is None
        await repo.save(ana, None, first, message_length=10)
    async with db.session() as session:
        await RelationshipRepository(session).save(ana, None, later, message_length=20)
    async with db.session() as session:
        await RelationshipRepository(session).save(ana, guild, first)
    async with db.session() as session:
        repo = RelationshipRepository(session)
        assert await repo.get(ana, None) == later
        assert await repo.get(ana, guild) == first
        assert await repo.get(ana, guild + 1) is None
        rows = (
            await session.execute(
                select(
                    UserRelationship.guild_id,
                    UserRelationship.avg_message_length,
                    UserRelationship.first_interaction_at,
                    UserRelationship.shared_references,
                ).order_by(UserRelationship.id)
            )
        ).all()
    assert len(rows) == 2  # one DM row, however often it is saved
    dm, in_guild = rows
    assert dm.guild_id is None and dm.avg_message_length == pytest.approx(15.0)  # (10 + 20) / 2
    assert dm.first_interaction_at == T0
    assert dm.shared_references == {"nicknames": ["Annie", "A"], "inside_jokes": ["the penguin incident"]}
    assert in_guild.guild_id == guild and in_guild.avg_message_length == 0.0


async def test_relationships_of_several_users_are_read_and_stored_together(db: Database) -> None:
    """What the learner does once per batch: each row keeps its own running mean, and a state without a last
    interaction leaves the stored one as it was."""
    ana, bo, cy = [await _user(db, n, name) for n, name in enumerate(("ana", "bo", "cy"), start=1)]
    known = Relationship(score=20.0, interaction_count=1, last_interaction_at=T0)
    async with db.session() as session:
        await RelationshipRepository(session).save(ana, None, known, message_length=10)
    async with db.session() as session:
        repo = RelationshipRepository(session)
        assert await repo.get_many([ana, bo, cy], None) == {ana: known}
        await repo.save_many(
            None,
            {
                bo: Exchange(Relationship(score=5.0, interaction_count=1, last_interaction_at=T0), 8),
                ana: Exchange(replace(known, score=30.0, interaction_count=2, last_interaction_at=None), 30),
            },
        )
    async with db.session() as session:
        stored = await RelationshipRepository(session).get_many([ana, bo, cy], None)
        rows = (await session.execute(select(UserRelationship.user_id, UserRelationship.avg_message_length))).all()
    means = {user_id: mean for user_id, mean in rows}
    assert stored == {
        ana: replace(known, score=30.0, interaction_count=2),  # its last interaction kept
        bo: Relationship(score=5.0, interaction_count=1, last_interaction_at=T0),
    }
    assert means == {ana: pytest.approx(20.0), bo: pytest.approx(8.0)}  # ana: (10 + 30) / 2


async def test_mood_is_saved_per_place_and_changes_are_recorded(db: Database) -> None:
    ana, bo = await _user(db, 1, "ana"), await _user(db, 2, "bo")
    guild = await _guild(db, 100, "A")
    ana_dm, bo_dm, in_guild = StatePlace(dm_user_id=ana), StatePlace(dm_user_id=bo), StatePlace(guild_id=guild)
    async with db.session() as session:
        repo = MoodRepository(session)
        assert await repo.get(ana_dm) is None
        assert await repo.all_states() == []
        await repo.save(ana_dm, Mood(0.2, -0.1), at=T0)
        await repo.save(in_guild, Mood(-0.5, 0.5), at=T0)
    async with db.session() as session:
        repo = MoodRepository(session)
        await repo.save(ana_dm, Mood(0.6, 0.3), at=T0 + timedelta(hours=2))
        await repo.record_change(ana_dm, Mood(0.6, 0.3), at=T0 + timedelta(hours=2), trigger_type="conversation")
        await repo.record_change(
            in_guild, Mood(-0.5, 0.5), at=T0, trigger_type="conversation", user_id=ana, description="a rude remark"
        )
    async with db.session() as session:
        repo = MoodRepository(session)
        assert await repo.get(ana_dm) == (Mood(0.6, 0.3), T0 + timedelta(hours=2))
        assert await repo.get(bo_dm) is None, "each DM is a place of its own"
        assert await repo.last_recorded(bo_dm) is None and await repo.last_recorded(ana_dm) == Mood(0.6, 0.3)
        assert await repo.get(in_guild) == (Mood(-0.5, 0.5), T0)
        assert await repo.get(StatePlace(guild_id=guild + 1)) is None
        assert sorted(await repo.all_states(), key=lambda s: s[0].guild_id or 0) == [
            (ana_dm, Mood(0.6, 0.3), T0 + timedelta(hours=2)),
            (in_guild, Mood(-0.5, 0.5), T0),
        ]
        assert await session.scalar(select(func.count()).select_from(BotState)) == 2
        history = (
            await session.execute(
                select(
                    MoodHistory.guild_id,
                    MoodHistory.dm_user_id,
                    MoodHistory.valence,
                    MoodHistory.trigger_user_id,
                    MoodHistory.trigger_description,
                    MoodHistory.recorded_at,
                ).order_by(MoodHistory.id)
            )
        ).all()
    assert [tuple(row) for row in history] == [
        (None, ana, 0.6, None, None, T0 + timedelta(hours=2)),
        (guild, None, -0.5, ana, "a rude remark", T0),
    ]


async def test_opinions_round_trip_per_place_by_normalised_topic(db: Database) -> None:
    ana, bo = await _user(db, 1, "ana"), await _user(db, 2, "bo")
    guild = await _guild(db, 100, "A")
    ana_dm, bo_dm, in_guild = StatePlace(dm_user_id=ana), StatePlace(dm_user_id=bo), StatePlace(guild_id=guild)
    early = Opinion(topic="Rock  Climbing", sentiment=0.4, interest=0.4, discussion_count=1, last_discussed_at=T0)
    formed = Opinion(
        topic="rock climbing",
        sentiment=0.7,
        interest=0.6,
        discussion_count=3,
        formed_at=T0 + timedelta(days=2),
        last_discussed_at=T0 + timedelta(days=2),
    )
    async with db.session() as session:
        repo = OpinionRepository(session)
        assert await repo.get_many(ana_dm, ["rock climbing"]) == {}
        await repo.save(ana_dm, early, sources=[ana])
        await repo.save(in_guild, Opinion(topic="jazz", sentiment=-0.3, last_discussed_at=T0), sources=[ana, bo])
    async with db.session() as session:
        await OpinionRepository(session).save(ana_dm, formed)
        await OpinionRepository(session).save(
            in_guild, Opinion(topic="jazz", sentiment=-0.3, last_discussed_at=T0), sources=[bo]
        )
    async with db.session() as session:
        repo = OpinionRepository(session)
        assert await repo.get_many(ana_dm, ["Rock Climbing", "jazz"]) == {"rock climbing": formed}
        assert await repo.get_many(bo_dm, ["Rock Climbing", "jazz"]) == {}, "each DM is a place of its own"
        assert await repo.get_many(in_guild, ["jazz", "rock climbing"]) == {
            "jazz": Opinion(topic="jazz", sentiment=-0.3, last_discussed_at=T0)
        }
        assert await repo.get_many(in_guild, []) == {}
        assert await session.scalar(select(func.count()).select_from(BotOpinion)) == 2
        sources = await session.execute(select(BotOpinionSource.opinion_id, BotOpinionSource.user_id))
        jazz = await session.scalar(select(BotOpinion.id).where(BotOpinion.topic == "jazz"))
    # Who spoke where a guild opinion was formed, each once; a DM opinion is its user's already.
    assert sorted(tuple(row) for row in sources.all()) == [(jazz, ana), (jazz, bo)]


async def test_styles_round_trip_with_one_row_per_user(db: Database) -> None:
    ana = await _user(db, 1, "ana")
    first = CommunicationStyle(mean_words=7.5, formality=0.2, emoji_usage=0.9, humor=0.7, detail=0.1, sample_count=3)
    later = CommunicationStyle(mean_words=48.0, formality=0.8, emoji_usage=0.1, humor=0.3, detail=0.9, sample_count=30)
    async with db.session() as session:
        repo = StyleRepository(session)
        assert await repo.get(ana) is None
        await repo.save(ana, first)
    async with db.session() as session:
        assert await StyleRepository(session).get(ana) == first
        await StyleRepository(session).save(ana, later)
    async with db.session() as session:
        assert await StyleRepository(session).get(ana) == later
        rows = (
            await session.execute(
                select(
                    UserCommunicationStyle.preferred_length,
                    UserCommunicationStyle.confidence,
                    UserCommunicationStyle.engagement_signals,
                )
            )
        ).all()
    assert [tuple(row) for row in rows] == [("long", pytest.approx(later.confidence), {"mean_words": 48.0})]


async def test_a_style_stored_without_mean_words_starts_from_its_label(db: Database) -> None:
    ana = await _user(db, 1, "ana")
    async with db.session() as session:
        session.add(UserCommunicationStyle(user_id=ana, preferred_length="short", samples_collected=4))
    async with db.session() as session:
        style = await StyleRepository(session).get(ana)
    assert style is not None and (style.preferred_length, style.sample_count) == ("short", 4)


async def test_a_speakers_state_is_read_at_once_for_the_place_asked_about(db: Database) -> None:
    ana, bo = await _user(db, 1, "ana"), await _user(db, 2, "bo")
    guild, other = await _guild(db, 100, "A"), await _guild(db, 200, "B")
    in_dms = Relationship(
        score=30.0, interaction_count=4, positive_count=3, last_interaction_at=T0, nicknames=("Annie",)
    )
    in_guild = Relationship(score=55.0, interaction_count=9, positive_count=7, last_interaction_at=T0)
    style = CommunicationStyle(mean_words=7.5, formality=0.2, emoji_usage=0.9, humor=0.7, detail=0.1, sample_count=3)
    async with db.session() as session:
        assert await SpeakerStateRepository(session).get(ana, guild) == SpeakerState(False, None, None, None)
        assert await SpeakerStateRepository(session).get(ana + bo + 1, guild) is None  # no such user
        await RelationshipRepository(session).save(ana, None, in_dms)
        await RelationshipRepository(session).save(ana, guild, in_guild)
        await StyleRepository(session).save(ana, style)
        await MoodRepository(session).save(StatePlace(dm_user_id=ana), Mood(0.2, -0.1), at=T0)
        await MoodRepository(session).save(StatePlace(guild_id=guild), Mood(-0.5, 0.5), at=T0 + timedelta(hours=1))
        (await UserRepository(session).preferences(bo)).learning_opt_out = True
    async with db.session() as session:
        state = SpeakerStateRepository(session)
        assert await state.get(ana, guild) == SpeakerState(
            False, in_guild, style, (Mood(-0.5, 0.5), T0 + timedelta(hours=1))
        )
        assert await state.get(ana, None) == SpeakerState(False, in_dms, style, (Mood(0.2, -0.1), T0))
        assert await state.get(ana, other) == SpeakerState(False, None, style, None)  # nothing of guild A's there
        assert await state.get(bo, guild) == SpeakerState(True, None, None, (Mood(-0.5, 0.5), T0 + timedelta(hours=1)))
        assert await state.get(bo, None) == SpeakerState(True, None, None, None)  # Ana's DM mood is not Bo's


# --- learning ------------------------------------------------------------------------------------------------


async def test_unlearned_messages_follow_the_marker_which_never_moves_back(db: Database) -> None:
    ana, bo = await _user(db, 1, "ana"), await _user(db, 2, "bo")
    guild = await _guild(db, 100, "A")
    async with db.session() as session:
        await GuildRepository(session).upsert_member(
            guild_id=guild, user_id=ana, nickname="Annie", roles=[], joined_at=None
        )
        talk = await ConversationRepository(session).open(channel_id=555, guild_id=guild, user_id=None, at=T0)
        repo = ConversationRepository(session)

        async def say(user: int | None, role: str, content: str, minute: int) -> int:
            return await repo.add_message(
                conversation_id=talk.id, user_id=user, role=role, content=content, at=T0 + timedelta(minutes=minute)
            )

        m1 = await say(ana, "user", "I started climbing", 0)
        m2 = await say(ana, "assistant", "Nice!", 1)
        await say(None, "system", "(a note)", 2)
        m4 = await say(bo, "user", "me too", 3)
    async with db.session() as session:
        learning = LearningRepository(session)
        everything = await learning.unlearned(talk.id, limit=10)
        first_two = await learning.unlearned(talk.id, limit=2)
    assert [(m.id, m.role, m.user_id, m.speaker) for m in everything] == [
        (m1, "user", ana, "Annie"),
        (m2, "assistant", ana, None),
        (m4, "user", bo, "bo"),
    ]
    assert everything[0].content == "I started climbing" and everything[0].created_at == T0
    assert {(m.guild_id, m.channel_id) for m in everything} == {(guild, 555)}
    assert [m.id for m in first_two] == [m1, m2]

    async with db.session() as session:
        learning = LearningRepository(session)
        await learning.mark_learned(talk.id, m2)
        await learning.mark_learned(talk.id, m1)  # backwards: ignored
    async with db.session() as session:
        assert [m.id for m in await LearningRepository(session).unlearned(talk.id, limit=10)] == [m4]
        await LearningRepository(session).mark_learned(talk.id, m4)
    async with db.session() as session:
        assert await LearningRepository(session).unlearned(talk.id, limit=10) == []
        assert await session.scalar(select(Conversation.learned_message_id).where(Conversation.id == talk.id)) == m4


async def test_conversations_behind_hold_user_messages_after_the_marker(db: Database) -> None:
    ana = await _user(db, 1, "ana")
    async with db.session() as session:
        repo = ConversationRepository(session)
        learning = LearningRepository(session)
        never = await repo.open(channel_id=1, guild_id=None, user_id=ana, at=T0)
        await repo.add_message(conversation_id=never.id, user_id=ana, role="user", content="hi", at=T0)
        done = await repo.open(channel_id=2, guild_id=None, user_id=ana, at=T0)
        said = await repo.add_message(conversation_id=done.id, user_id=ana, role="user", content="hi", at=T0)
        await learning.mark_learned(done.id, said)
        answered = await repo.open(channel_id=3, guild_id=None, user_id=ana, at=T0)
        said = await repo.add_message(conversation_id=answered.id, user_id=ana, role="user", content="hi", at=T0)
        await learning.mark_learned(answered.id, said)
        await repo.add_message(conversation_id=answered.id, user_id=ana, role="assistant", content="hey", at=T0)
        behind = await repo.open(channel_id=4, guild_id=None, user_id=ana, at=T0 - timedelta(hours=1))
        said = await repo.add_message(
            conversation_id=behind.id, user_id=ana, role="user", content="hi", at=T0 - timedelta(hours=1)
        )
        await learning.mark_learned(behind.id, said)
        await repo.add_message(
            conversation_id=behind.id, user_id=ana, role="user", content="more", at=T0 - timedelta(minutes=30)
        )
        await repo.open(channel_id=5, guild_id=None, user_id=ana, at=T0)  # empty
    async with db.session() as session:
        learning = LearningRepository(session)
        assert await learning.conversations_behind(limit=10) == [behind.id, never.id]  # least recent first
        assert await learning.conversations_behind(limit=1) == [behind.id]


async def test_learning_allowed_respects_opt_outs_and_guild_settings(db: Database) -> None:
    ana, bo, cy = await _user(db, 1, "ana"), await _user(db, 2, "bo"), await _user(db, 3, "cy")
    quiet = await _guild(db, 100, "Quiet", learning=False)
    open_ = await _guild(db, 200, "Open")
    on = await _guild(db, 300, "On", learning=True)
    async with db.session() as session:
        users = UserRepository(session)
        (await users.preferences(ana)).learning_opt_out = True
        await users.preferences(bo)  # a row with the default
    async with db.session() as session:
        learning = LearningRepository(session)
        assert await learning.learning_allowed([ana, bo, cy], quiet) == ({bo, cy}, False)
        assert await learning.learning_allowed([ana, bo, cy], open_) == ({bo, cy}, True)
        assert await learning.learning_allowed([cy], on) == ({cy}, True)
        assert await learning.learning_allowed([ana], None) == (set(), True)
        assert await learning.learning_allowed([], None) == (set(), True)


# --- migration 0004 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_upgrading_marks_existing_conversations_as_learned(
    backend: str, tmp_path: Path, postgres_server_url: URL
) -> None:
    """Existing history is not learned from after the upgrade: each conversation's marker is its last message."""
    async with database_at(backend, "0003", tmp_path=tmp_path, server_url=postgres_server_url) as database:
        async with database.engine.begin() as connection:
            for conversation in (1, 2):
                await connection.execute(
                    text(
                        "INSERT INTO conversations (id, channel_id, started_at, last_message_at, message_count,"
                        " is_active, created_at, updated_at) VALUES (:id, :id, :at, :at, 0, true, :at, :at)"
                    ).bindparams(bindparam("at", type_=UTCDateTime())),
                    {"id": conversation, "at": T0},
                )
            for message, conversation in ((10, 1), (11, 1), (12, 1)):
                await connection.execute(
                    text(
                        "INSERT INTO messages (id, conversation_id, role, content, has_images, image_urls,"
                        " created_at, updated_at) VALUES (:id, :c, 'user', 'hi', false, '[]', :at, :at)"
                    ).bindparams(bindparam("at", type_=UTCDateTime())),
                    {"id": message, "c": conversation, "at": T0},
                )
        await migrations.upgrade(database, embedding_dimension=EMBEDDING_DIMENSION)
        async with database.session() as session:
            markers = dict((await session.execute(select(Conversation.id, Conversation.learned_message_id))).all())
            assert markers == {1: 12, 2: None}
            assert await LearningRepository(session).conversations_behind(limit=10) == []


# --- migration 0006 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_upgrading_gives_each_dm_its_own_state_and_drops_what_no_one_dm_owns(
    backend: str, tmp_path: Path, postgres_server_url: URL
) -> None:
    """The one DM mood and the DM opinions all DMs shared cannot be given to one user: they go (each DM starts
    from the baseline). A DM mood change is given to the user who caused it; guild state is kept as it was."""
    at = bindparam("at", type_=UTCDateTime())
    async with database_at(backend, "0005", tmp_path=tmp_path, server_url=postgres_server_url) as database:
        async with database.engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO users (id, discord_id, discord_username, first_seen_at, last_seen_at, created_at,"
                    " updated_at) VALUES (1, 11, 'ana', :at, :at, :at, :at)"
                ).bindparams(at),
                {"at": T0},
            )
            await connection.execute(
                text(
                    "INSERT INTO guilds (id, discord_id, name, joined_at, created_at, updated_at)"
                    " VALUES (7, 70, 'Cosy', :at, :at, :at)"
                ).bindparams(at),
                {"at": T0},
            )
            for guild, valence in ((None, -0.7), (7, 0.4)):
                await connection.execute(
                    text(
                        "INSERT INTO bot_states (guild_id, mood_valence, mood_updated_at, first_activated_at,"
                        " created_at, updated_at) VALUES (:guild, :valence, :at, :at, :at, :at)"
                    ).bindparams(at),
                    {"guild": guild, "valence": valence, "at": T0},
                )
                await connection.execute(
                    text(
                        "INSERT INTO bot_opinions (guild_id, topic, last_reinforced_at, created_at, updated_at)"
                        " VALUES (:guild, :topic, :at, :at, :at)"
                    ).bindparams(at),
                    {"guild": guild, "topic": f"topic in {guild}", "at": T0},
                )
            for guild, trigger in ((None, 1), (None, None), (7, 1)):
                await connection.execute(
                    text(
                        "INSERT INTO mood_history (guild_id, valence, arousal, trigger_type, trigger_user_id,"
                        " recorded_at, created_at, updated_at) VALUES (:guild, 0.5, 0, 'conversation', :user,"
                        " :at, :at, :at)"
                    ).bindparams(at),
                    {"guild": guild, "user": trigger, "at": T0},
                )
        await migrations.upgrade(database, embedding_dimension=EMBEDDING_DIMENSION)
        async with database.session() as session:
            states = await session.execute(select(BotState.guild_id, BotState.dm_user_id, BotState.mood_valence))
            opinions = await session.execute(select(BotOpinion.guild_id, BotOpinion.dm_user_id, BotOpinion.topic))
            history = await session.execute(
                select(MoodHistory.guild_id, MoodHistory.dm_user_id).order_by(MoodHistory.id)
            )
            assert [tuple(row) for row in states.all()] == [(7, None, 0.4)]
            assert [tuple(row) for row in opinions.all()] == [(7, None, "topic in 7")]
            assert [tuple(row) for row in history.all()] == [(None, 1), (7, None)]
            assert await MoodRepository(session).get(StatePlace(dm_user_id=1)) is None
            await MoodRepository(session).save(StatePlace(dm_user_id=1), Mood(0.1, 0.1), at=T0)
        await migrations.downgrade(database, revision="0005")  # Ana's own DM mood cannot become everyone's
        async with database.session() as session:
            assert (await session.execute(text("SELECT guild_id FROM bot_states"))).all() == [(7,)]
