"""Guild personas on a real database (both backends): choosing, editing, resetting and importing cards."""

import asyncio
import json
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import select

from bot.db.engine import Database
from bot.db.models import Persona
from bot.db.repositories.guilds import GuildRepository
from bot.db.repositories.personas import PersonaRepository
from bot.domain.cards import Card, parse_card
from bot.services.incoming import IncomingMessage
from bot.services.personas import DEFAULT_PERSONA, PersonaError, PersonaService
from tests.fakes.llm_server import FakeLLM
from tests.support.chat import RecordingReply, conversation_service
from tests.support.chat import message as incoming_message


async def guilds(db: Database, *discord_ids: int) -> list[int]:
    async with db.session() as session:
        repo = GuildRepository(session)
        return [(await repo.upsert(discord_id=discord_id, name=f"guild {discord_id}")).id for discord_id in discord_ids]


async def rows(db: Database) -> list[Persona]:
    async with db.session() as session:
        return list((await session.scalars(select(Persona).order_by(Persona.id))).all())


def card(name: str = "Mira", **data: Any) -> Card:
    fields = {
        "name": name,
        "description": "{{char}} keeps the lighthouse.",
        "personality": "dry, patient",
        "first_mes": "*{{char}} hands {{user}} a blanket.*",
        "mes_example": "<START>\n{{user}}: hi\n{{char}}: Mind the rocks.",
        "tags": ["sea"],
        **data,
    }
    return parse_card(json.dumps({"spec": "chara_card_v2", "spec_version": "2.0", "data": fields}).encode(), "c.json")


async def test_editing_in_one_guild_never_reaches_another_guild_or_the_global_default(db: Database) -> None:
    personas = PersonaService(db, ttl_s=3600)
    a, b = await guilds(db, 1, 2)
    shipped = await personas.for_guild(None)
    assert (await personas.for_guild(a)).id == (await personas.for_guild(b)).id == shipped.id  # all cached now
    assert await personas.edit(a, name="Hearth", greeting=DEFAULT_PERSONA["greeting"]) == shipped  # no change, no copy

    edited = await personas.edit(a, name="  Ember ", personality_prompt="You are blunt.", greeting="")
    again = await personas.edit(a, backstory="Born in a forge.", name=None)

    assert edited.owned_by_guild and not shipped.owned_by_guild and edited.id != shipped.id
    assert (edited.name, edited.personality_prompt, edited.greeting) == ("Ember", "You are blunt.", None)
    assert edited.backstory == DEFAULT_PERSONA["backstory"]  # the copy keeps what was not edited
    assert again.id == edited.id and (again.name, again.backstory) == ("Ember", "Born in a forge.")
    assert await personas.for_guild(a) == again  # at once, despite the hour-long cache
    for service in (personas, PersonaService(db)):  # the cache and the database agree
        assert (await service.for_guild(b)) == (await service.for_guild(None)) == shipped
    assert shipped.personality_prompt == DEFAULT_PERSONA["personality_prompt"]
    assert [view.name for view in await personas.available(a)] == ["Ember", "Hearth"]
    assert [view.name for view in await personas.available(b)] == ["Hearth"]


async def test_use_copies_a_global_persona_and_reset_returns_to_the_default(db: Database) -> None:
    personas = PersonaService(db, ttl_s=3600)
    a, b = await guilds(db, 1, 2)
    shipped = await personas.ensure_default()
    async with db.session() as session:
        sage = await PersonaRepository(session).add(name="Sage", personality_prompt="You are wise.", guild_id=None)

    chosen = await personas.use(a, "  sAGE ")
    await personas.edit(a, personality_prompt="You are wise, and tired of it.")
    assert (chosen.name, chosen.owned_by_guild, chosen.attributes) == ("Sage", True, {"copied_from": sage.id})
    assert (await personas.for_guild(b)).id == shipped.id

    hearth = await personas.use(a, "HEARTH")
    back = await personas.use(a, "sage")  # the guild's own Sage now, with its edit, not a second copy
    assert hearth.owned_by_guild and hearth.id != shipped.id
    assert back.id == chosen.id and back.personality_prompt == "You are wise, and tired of it."
    assert (await personas.for_guild(a)).id == back.id

    with pytest.raises(PersonaError, match=r"no persona called “Nobody” here\. You can choose: Sage, Hearth, "):
        await personas.use(a, "Nobody")

    assert await personas.reset(a) == shipped
    assert await personas.for_guild(a) == shipped
    stored = await rows(db)
    assert [(p.name, p.guild_id, p.is_default) for p in stored] == [
        ("Hearth", None, True),
        ("Sage", None, False),
        ("Sage", a, False),
        ("Hearth", a, False),
    ]
    assert next(p for p in stored if p.id == sage.id).personality_prompt == "You are wise."


async def test_an_imported_card_speaks_in_its_guild_and_a_reimport_replaces_it(db: Database) -> None:
    personas = PersonaService(db, ttl_s=3600)
    a, b = await guilds(db, 1, 2)
    shipped = await personas.for_guild(b)

    mira = await personas.import_card(a, card())
    assert await personas.for_guild(a) == mira
    assert (mira.name, mira.owned_by_guild, mira.greeting) == ("Mira", True, "*Mira hands the user a blanket.*")
    assert mira.personality_prompt == "Description: Mira keeps the lighthouse.\n\nPersonality: dry, patient"
    assert mira.example_dialogue == "User: hi\nMira: Mind the rocks."
    assert mira.attributes["source"] == "character card" and mira.attributes["tags"] == ["sea"]

    await personas.reset(a)
    updated = await personas.import_card(a, card("MIRA", personality="warmer now"))
    other = await personas.import_card(b, card())
    assert updated.id == mira.id and updated.name == "MIRA" and "Personality: warmer now" in updated.personality_prompt
    assert await personas.for_guild(a) == updated
    assert other.id not in (mira.id, shipped.id) and await personas.for_guild(b) == other
    assert [view.name for view in await personas.available(a)] == ["MIRA", "Hearth"]

    await personas.import_card(a, card("Nyx"))
    with pytest.raises(PersonaError, match=r"already has a persona called “MIRA”"):
        await personas.edit(a, name="mira")
    assert (await personas.for_guild(a)).name == "Nyx"


async def test_bad_edits_are_refused_in_words_and_change_nothing(db: Database) -> None:
    personas = PersonaService(db)
    (a,) = await guilds(db, 1)
    shipped = await personas.ensure_default()
    refused = [
        ({"name": "   "}, "The name cannot be empty."),
        ({"name": "x" * 101}, "The name may be at most 100 characters long (this one is 101)."),
        ({"personality_prompt": ""}, "The personality cannot be empty."),
        ({"greeting": "g" * 20_001}, "The greeting may be at most 20,000 characters long (this one is 20,001)."),
    ]
    for fields, message in refused:
        with pytest.raises(PersonaError) as raised:
            await personas.edit(a, **fields)
        assert str(raised.value) == message

    assert await personas.for_guild(a) == shipped
    assert len(await rows(db)) == 1


async def test_deleting_the_guilds_persona_brings_back_the_default(db: Database) -> None:
    personas = PersonaService(db, ttl_s=3600)
    (a,) = await guilds(db, 1)
    shipped = await personas.ensure_default()
    await personas.import_card(a, card())

    with pytest.raises(PersonaError, match=r"no persona of its own called “Hearth”.*Its own are: Mira\."):
        await personas.delete(a, "Hearth")
    await personas.delete(a, "mira")

    assert await personas.for_guild(a) == shipped
    assert [p.name for p in await rows(db)] == ["Hearth"]


async def test_concurrent_imports_leave_one_default_per_guild(db: Database) -> None:
    personas = PersonaService(db)
    (a,) = await guilds(db, 1)
    await personas.ensure_default()

    await asyncio.gather(*(personas.import_card(a, card(f"Card {n}")) for n in range(6)))

    defaults = [p for p in await rows(db) if p.guild_id == a and p.is_default]
    assert len(defaults) == 1 and (await personas.for_guild(a)).id == defaults[0].id


async def test_concurrent_imports_of_one_name_store_it_once(db: Database) -> None:
    """The name check runs under the guild's lock on both backends, so racing imports cannot both add."""
    personas = PersonaService(db)
    (a,) = await guilds(db, 1)
    await personas.ensure_default()

    imported = await asyncio.gather(*(personas.import_card(a, card("Mira", personality=f"take {n}")) for n in range(4)))

    own = [p for p in await rows(db) if p.guild_id == a]
    assert len(own) == 1 and {view.id for view in imported} == {own[0].id} and own[0].is_default


async def test_a_guild_may_store_only_so_many_personas(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bot.services.personas.MAX_GUILD_PERSONAS", 2)
    personas = PersonaService(db)
    (a,) = await guilds(db, 1)
    await personas.import_card(a, card("Mira"))
    await personas.import_card(a, card("Nyx"))
    full = r"already stores 2 personas, the most it may keep\. Delete one of its own first\."

    with pytest.raises(PersonaError, match=full):
        await personas.import_card(a, card("Third"))
    with pytest.raises(PersonaError, match=full):
        await personas.use(a, "Hearth")  # would copy the global persona
    assert (await personas.import_card(a, card("NYX", personality="again"))).name == "NYX"  # a re-import fits

    await personas.delete(a, "nyx")
    assert (await personas.use(a, "hearth")).owned_by_guild


async def test_the_default_is_ensured_once_and_available_only_reads(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    personas = PersonaService(db)
    (a,) = await guilds(db, 1)
    calls = 0
    ensure_default = personas.ensure_default

    async def counted() -> Any:
        nonlocal calls
        calls += 1
        return await ensure_default()

    monkeypatch.setattr(personas, "ensure_default", counted)
    assert [view.name for view in await personas.available(a)] == ["Hearth"]  # creates the shipped persona
    await personas.edit(a, greeting="Hi.")
    await personas.use(a, "Hearth")
    assert [view.name for view in await personas.available(a)] == ["Hearth", "Hearth"]

    assert calls == 1


async def test_locking_an_unknown_guild_is_a_programming_error(db: Database) -> None:
    async with db.session() as session:
        with pytest.raises(LookupError, match="no guild with id 999"):
            await PersonaRepository(session).lock_guild(999)


async def test_a_channel_plays_its_own_persona_until_reset(db: Database, llm: FakeLLM) -> None:
    service = conversation_service(db, llm)
    here = incoming_message("hi", guild=77, channel=701, mention=True)
    there = incoming_message("hi", guild=77, channel=702, mention=True)
    await service.handle(here, RecordingReply())  # the guild is known from here on
    personas = service.intake.personas
    view = await service.directory.guild(here.place)
    assert view is not None
    await personas.import_card(view.guild_id, card("Mira"))
    await personas.use(view.guild_id, DEFAULT_PERSONA["name"])  # the server plays the default again

    async def speaker(like: IncomingMessage) -> str:
        """Who answers a new message where ``like`` was sent (a new one: Discord sends each message once)."""
        asked = incoming_message("hi", guild=77, channel=like.place.channel_id, mention=True)
        await service.handle(asked, RecordingReply())
        return str(llm.chat_requests[-1].body["messages"][0]["content"])

    chosen = await personas.use_in_channel(view.guild_id, 701, "mira")
    assert chosen.name == "Mira"
    assert "Mira" in await speaker(here) and "Mira" not in await speaker(there)
    with pytest.raises(PersonaError, match="no persona called"):
        await personas.use_in_channel(view.guild_id, 701, "nobody")
    await personas.reset_channel(view.guild_id, 701)
    assert "Mira" not in await speaker(here)
    with pytest.raises(PersonaError, match="already plays"):
        await personas.reset_channel(view.guild_id, 701)
    # Deleting the persona ends the channel's choice with it.
    await personas.use_in_channel(view.guild_id, 702, "Mira")
    await personas.delete(view.guild_id, "Mira")
    assert "Mira" not in await speaker(there)


async def test_a_cast_character_answers_when_named_or_replied_to(db: Database, llm: FakeLLM) -> None:
    service = conversation_service(db, llm)
    first = incoming_message("hi", guild=78, channel=801, mention=True)
    await service.handle(first, RecordingReply())  # the guild is known from here on
    personas = service.intake.personas
    view = await service.directory.guild(first.place)
    assert view is not None
    await personas.import_card(view.guild_id, card("Mira"))
    await personas.use(view.guild_id, DEFAULT_PERSONA["name"])
    assert (await personas.cast_add(view.guild_id, 801, "mira")).name == "Mira"
    with pytest.raises(PersonaError, match="already"):
        await personas.cast_add(view.guild_id, 801, "Mira")

    async def speakers(text: str, **signals: Any) -> tuple[list[str], str]:
        target = RecordingReply()
        incoming = incoming_message(text, guild=78, channel=801)
        incoming = replace(incoming, signals=replace(incoming.signals, **signals))
        await service.handle(incoming, target)
        return target.speakers, str(llm.chat_requests[-1].body["messages"][0]["content"])

    named, prompt = await speakers("Mira, how is the lighthouse?")
    assert named == ["Mira"] and "lighthouse" in prompt
    replied, _ = await speakers("and then?", replied_to_webhook_name="mira")
    assert replied == ["Mira"]
    asked = len(llm.chat_requests)
    assert (await speakers("Miranda is not her", mentions_bot=True))[0] == []
    assert "lighthouse" not in str(llm.chat_requests[asked:][-1].body["messages"][0]["content"])
    await personas.cast_remove(view.guild_id, 801, "Mira")
    asked = len(llm.chat_requests)
    await service.handle(incoming_message("Mira?", guild=78, channel=801), RecordingReply())
    assert len(llm.chat_requests) == asked, "no longer in the cast: naming her is not addressing Hearth"
