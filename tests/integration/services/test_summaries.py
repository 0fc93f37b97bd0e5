"""Summaries of idle conversations on a real database (both backends), with the model failing in the ways
endpoints do."""

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.db.engine import Database
from bot.db.models import Memory
from bot.db.repositories.conversations import ConversationRepository
from bot.db.repositories.users import UserRepository
from bot.domain.cut import CUT_BY_LENGTH
from bot.services import summaries as summaries_module
from bot.services.memory import MemoryService
from bot.services.personas import PersonaService
from bot.services.summaries import ConversationSummaries, SummaryConfig
from tests.fakes.llm_server import Fail, FakeLLM, LLMRequest, Reply, Step, thinking_within
from tests.support.chat import chat_model
from tests.support.database_faults import failing_statements
from tests.support.embedding import shared_embedder
from tests.support.postgres import OwnPostgres

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


async def summaries(
    db: Database, llm: FakeLLM, *, clock: Callable[[], datetime] = lambda: NOW, **config: Any
) -> ConversationSummaries:
    return ConversationSummaries(
        db,
        chat_model(llm.base_url, budget_s=0.5),
        MemoryService(db, await shared_embedder()),
        PersonaService(db),
        SummaryConfig("fake-model", **config),
        clock=clock,
    )


async def talk(db: Database, channel_id: int, lines: list[str], *, hours_ago: float) -> int:
    """A DM conversation that ended ``hours_ago``: each line from Ana, each answered; returns its id."""
    at = NOW - timedelta(hours=hours_ago)
    async with db.session() as session:
        user = await UserRepository(session).upsert(discord_id=11, username="ana", display_name="Ana", seen_at=at)
        conversations = ConversationRepository(session)
        conversation = await conversations.open(channel_id=channel_id, guild_id=None, user_id=user.id, at=at)
        for line in lines:
            for role, content in (("user", line), ("assistant", "I see.")):
                await conversations.add_message(
                    conversation_id=conversation.id, user_id=user.id, role=role, content=content, at=at
                )
        return conversation.id


async def summarised(db: Database) -> dict[int | None, str]:
    async with db.session() as session:
        statement = select(Memory.conversation_id, Memory.content).where(Memory.kind == "summary")
        rows = (await session.execute(statement)).all()
    return {conversation_id: content for conversation_id, content in rows}


def about(request: LLMRequest, word: str) -> bool:
    return word in request.prompt_text()


async def test_a_conversation_longer_than_the_models_window_is_summarised_from_its_end(
    db: Database, llm: FakeLLM
) -> None:
    llm.context_windows["fake-model"] = 1024  # smaller than the transcript of 3000 tokens the summary is asked with
    lines = [f"on day {day} I walked by the river and counted {day} herons" for day in range(300)]
    conversation = await talk(db, 700, [*lines, "next month I am moving to Rome"], hours_ago=3)
    llm.default = Reply("Ana walked by the river a lot and is moving to Rome next month.")

    assert await (await summaries(db, llm)).close_idle() == 1

    assert await summarised(db) == {conversation: "Ana walked by the river a lot and is moving to Rome next month."}
    answered = llm.chat_requests[-1]
    assert about(answered, "moving to Rome") and not about(answered, "on day 0 ")


async def test_while_the_model_is_down_a_sweep_stops_at_the_first_conversation_and_says_so_once(
    db: Database, llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    trips = {
        await talk(db, 700 + number, [f"I am planning a trip to {city}"], hours_ago=5 - number): city
        for number, city in enumerate(("Rome", "Oslo", "Lima"))
    }
    llm.default = Fail(503)
    jobs = await summaries(db, llm)

    assert await jobs.close_idle() == 0

    asked = {city for city in trips.values() for request in llm.chat_requests if about(request, city)}
    assert asked == {"Rome"}  # the oldest; the others were not made to wait out the retries in turn
    said = [record for record in caplog.records if record.name == "bot.services.summaries"]
    assert [record.levelno for record in said] == [logging.WARNING] and said[0].exc_info is None
    assert await summarised(db) == {}

    llm.default = Reply("A trip is planned.")
    assert await jobs.close_idle() == 3
    assert set(await summarised(db)) == set(trips)


FILTERED = "The response was filtered due to the prompt triggering content management policy."


@pytest.mark.parametrize(
    "refusal",
    [Fail(400, message=FILTERED, code="content_filter"), Reply("", finish_reason="content_filter")],
    ids=["refused", "withheld-answer"],
)
async def test_a_conversation_the_endpoint_refuses_is_put_off_and_leaves_its_place_to_the_next(
    db: Database, llm: FakeLLM, refusal: Step
) -> None:
    refused = await talk(db, 700, ["I am planning a trip to Rome"], hours_ago=4)
    later = await talk(db, 701, ["I am planning a trip to Oslo"], hours_ago=3)

    def filtered(body: dict[str, Any]) -> Step:
        return refusal if "Rome" in str(body["messages"]) else Reply("Ana is planning a trip to Oslo.")

    llm.default = filtered
    jobs = await summaries(db, llm, per_run=1)  # one conversation a sweep: the oldest due

    assert await jobs.close_idle() == 0
    assert await jobs.close_idle() == 1

    assert await summarised(db) == {later: "Ana is planning a trip to Oslo."}
    assert len([request for request in llm.chat_requests if about(request, "Rome")]) == 1
    assert refused not in await summarised(db)


async def test_a_summary_a_content_filter_cut_off_part_way_is_put_off_not_kept_as_the_whole_story(
    db: Database, llm: FakeLLM
) -> None:
    """What the filter let through is not the whole talk: remembered as if it were, it would be recalled so for
    good. The conversation is put off like one refused for what it says, and the next one is summarised."""
    cut = await talk(db, 700, ["I am planning a trip to Rome", "and I am scared of flying"], hours_ago=4)
    later = await talk(db, 701, ["I am planning a trip to Oslo"], hours_ago=3)

    def filtered(body: dict[str, Any]) -> Step:
        if "Rome" in str(body["messages"]):
            return Reply("Ana is planning a trip to Rome", finish_reason="content_filter")
        return Reply("Ana is planning a trip to Oslo.")

    llm.default = filtered
    now = [NOW]
    jobs = await summaries(db, llm, clock=lambda: now[0], per_run=1)

    assert await jobs.close_idle() == 0
    assert await jobs.close_idle() == 1
    assert await summarised(db) == {later: "Ana is planning a trip to Oslo."}
    assert len([request for request in llm.chat_requests if about(request, "Rome")]) == 1

    llm.default = Reply("Ana is planning a trip to Rome and is scared of flying.")
    now[0] += timedelta(days=1)
    assert await jobs.close_idle() == 1
    assert (await summarised(db))[cut] == "Ana is planning a trip to Rome and is scared of flying."


async def test_a_summary_cut_short_by_its_max_tokens_is_asked_for_again_with_more_room(
    db: Database, llm: FakeLLM
) -> None:
    conversation = await talk(db, 700, ["I am planning a trip to Rome", "and I am scared of flying"], hours_ago=3)
    llm.script(
        Reply("Ana is planning a trip to Rome and", finish_reason="length"),
        Reply("Ana is planning a trip to Rome and is scared of flying."),
    )
    jobs = await summaries(db, llm, max_tokens=250, max_tokens_when_cut=600)

    assert await jobs.close_idle() == 1

    assert await summarised(db) == {conversation: "Ana is planning a trip to Rome and is scared of flying."}
    assert [request.body["max_tokens"] for request in llm.chat_requests] == [250, 600]


@pytest.mark.parametrize("more_room", [600, 250], ids=["cut-again", "no-more-room"])
async def test_a_summary_still_cut_short_is_kept_marked_as_cut(db: Database, llm: FakeLLM, more_room: int) -> None:
    """Not asked for forever: what was written is kept, marked so that it is not recalled as the whole story."""
    conversation = await talk(db, 700, ["I am planning a trip to Rome", "and I am scared of flying"], hours_ago=3)
    llm.default = Reply("Ana is planning a trip to Rome and", finish_reason="length")
    jobs = await summaries(db, llm, max_tokens=250, max_tokens_when_cut=more_room)

    assert await jobs.close_idle() == 1
    assert await jobs.close_idle() == 0

    assert await summarised(db) == {conversation: f"Ana is planning a trip to Rome and…\n{CUT_BY_LENGTH}"}
    assert len(llm.chat_requests) == (2 if more_room > 250 else 1)


async def test_a_summary_the_model_thinks_away_all_its_room_on_is_asked_for_again_with_more(
    db: Database, llm: FakeLLM
) -> None:
    conversation = await talk(db, 700, ["I am planning a trip to Rome"], hours_ago=3)
    llm.default = thinking_within(400, "Ana is planning a trip to Rome.")
    jobs = await summaries(db, llm, max_tokens=250, max_tokens_when_cut=600)

    assert await jobs.close_idle() == 1

    assert await summarised(db) == {conversation: "Ana is planning a trip to Rome."}
    assert [request.body["max_tokens"] for request in llm.chat_requests] == [250, 600]


@pytest.mark.parametrize(
    "all_thinking",
    [
        Reply("", reasoning="So much to weigh. " * 20, finish_reason="length"),
        Reply("<think>" + "So much to weigh. " * 20 + "</think>"),  # some servers end it so when it took every token
    ],
    ids=["length", "only-thinking"],
)
async def test_a_conversation_the_model_thinks_away_every_answer_on_is_put_off_and_the_sweep_goes_on(
    db: Database, llm: FakeLLM, caplog: pytest.LogCaptureFixture, all_thinking: Reply
) -> None:
    """The model is not down: the next conversation may be answered, and the one it could not answer does not
    stand first in line at every sweep, keeping every later one from its summary."""
    caplog.set_level(logging.WARNING)
    rome = await talk(db, 700, ["I am planning a trip to Rome, " + "and a long tale of it " * 40], hours_ago=4)
    oslo = await talk(db, 701, ["I am planning a trip to Oslo"], hours_ago=3)
    short_talk = thinking_within(400, "Ana is planning a trip to Oslo.")

    def answer(body: dict[str, Any]) -> Reply:  # the long talk takes more thinking than any room it is given
        if "Rome" in str(body["messages"]):
            return all_thinking
        return short_talk(body)

    llm.default = answer
    now = [NOW]
    jobs = await summaries(db, llm, clock=lambda: now[0], max_tokens=250, max_tokens_when_cut=600)

    assert await jobs.close_idle() == 1
    assert await summarised(db) == {oslo: "Ana is planning a trip to Oslo."}
    assert [r.body["max_tokens"] for r in llm.chat_requests if about(r, "Rome")] == [250, 600]
    assert "LLM_MAX_TOKENS" in caplog.text

    now[0] += timedelta(minutes=20)
    assert await jobs.close_idle() == 0
    assert len([r for r in llm.chat_requests if about(r, "Rome")]) == 2, "put off, not asked at every sweep"

    llm.default = Reply("Ana told a long tale of a trip to Rome.")  # LLM_MAX_TOKENS was raised
    now[0] += timedelta(days=1)
    assert await jobs.close_idle() == 1
    assert (await summarised(db))[rome] == "Ana told a long tale of a trip to Rome."


async def test_an_endpoint_refusing_every_request_ends_the_sweep_and_gives_up_on_no_conversation(
    db: Database, llm: FakeLLM
) -> None:
    trips = [await talk(db, 700 + number, [f"a trip, number {number}"], hours_ago=5 - number) for number in range(3)]
    llm.default = Fail(401, message="Incorrect API key provided.", code="invalid_api_key")
    jobs = await summaries(db, llm)

    assert await jobs.close_idle() == 0
    assert len(llm.chat_requests) == 1

    llm.default = Reply("A trip.")  # the key was put right
    assert await jobs.close_idle() == 3
    assert set(await summarised(db)) == set(trips)


async def test_a_conversation_refused_for_its_content_is_asked_about_again_hours_later(
    db: Database, llm: FakeLLM
) -> None:
    """Not only after a restart: a filter may let it through another day, or the operator may have changed it."""
    conversation = await talk(db, 700, ["I am planning a trip to Rome"], hours_ago=3)
    llm.default = Fail(400, message=FILTERED, code="content_filter")
    now = [NOW]
    jobs = await summaries(db, llm, clock=lambda: now[0])

    assert await jobs.close_idle() == 0
    now[0] += timedelta(minutes=20)
    assert await jobs.close_idle() == 0
    assert len(llm.chat_requests) == 1, "not asked again at once"

    llm.default = Reply("Ana is planning a trip to Rome.")
    now[0] += timedelta(days=1)
    assert await jobs.close_idle() == 1
    assert await summarised(db) == {conversation: "Ana is planning a trip to Rome."}


async def test_an_endpoint_refusing_every_summary_with_400_costs_one_request_and_gives_none_up(
    db: Database, llm: FakeLLM
) -> None:
    """A wrong model name (OpenRouter answers 400 for one) or a provider's bad hour: the sweep stops at the first
    refusal that is not about that conversation's words, and once the endpoint answers, every conversation is
    summarised, the one refused only a while later, without a restart."""
    trips = [await talk(db, 700 + number, [f"a trip, number {number}"], hours_ago=5 - number) for number in range(3)]
    llm.default = Fail(400, message="fake-modle is not a valid model ID")
    now = [NOW]
    jobs = await summaries(db, llm, clock=lambda: now[0])

    assert await jobs.close_idle() == 0
    assert len(llm.chat_requests) == 1

    llm.default = Reply("A trip.")  # the model's name was put right
    assert await jobs.close_idle() == 2
    now[0] += timedelta(days=1)
    assert await jobs.close_idle() == 1
    assert set(await summarised(db)) == set(trips)


async def test_a_summary_whose_storing_meets_a_database_fault_is_stored_without_asking_the_model_again(
    db: Database, llm: FakeLLM
) -> None:
    conversation = await talk(db, 700, ["I am planning a trip to Rome"], hours_ago=3)
    llm.default = Reply("Ana is planning a trip to Rome.")
    jobs = await summaries(db, llm)

    with failing_statements(db, "INSERT", "memories") as failed:
        assert await jobs.close_idle() == 1

    assert len(failed) == 1
    assert await summarised(db) == {conversation: "Ana is planning a trip to Rome."}
    assert await jobs.close_idle() == 0
    assert len(llm.chat_requests) == 1


async def test_two_processes_sweeping_at_once_summarise_each_conversation_once(pg: Database, llm: FakeLLM) -> None:
    """Processes started together sweep at the same times: each conversation is asked about, and kept, once."""
    trips = {await talk(pg, 700 + n, [f"I am planning a trip to {city}"], hours_ago=3) for n, city in enumerate("AB")}
    llm.default = Reply("A trip is planned.", chunk_size=4, delay_between_chunks=0.05)  # both sweeps are under way

    first, second = await summaries(pg, llm), await summaries(pg, llm)
    assert sum(await asyncio.gather(first.close_idle(), second.close_idle())) == 2

    async with pg.session() as session:
        kept = (await session.scalars(select(Memory.conversation_id).where(Memory.kind == "summary"))).all()
    assert len(kept) == 2 and set(kept) == trips
    assert len(llm.chat_requests) == 2


async def test_a_database_that_goes_away_while_a_summary_is_written_ends_the_sweep_with_one_line(
    own_server: OwnPostgres,
    own_db: Database,
    llm: FakeLLM,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database restarts while the model writes the first summary, and stays down: the sweep stops there,
    saying so once, rather than failing every conversation left with a traceback each."""
    name = own_db.url.database
    assert name is not None
    caplog.set_level(logging.WARNING)
    monkeypatch.setattr(summaries_module, "STORE_BUDGET_S", 0.5)  # not half a minute of retries in a test
    trips = {
        await talk(own_db, 700 + number, [f"I am planning a trip to {city}"], hours_ago=5 - number): city
        for number, city in enumerate(("Rome", "Oslo", "Lima"))
    }
    outage = own_server.unreachable(name)
    written: list[str] = []

    async def writing_while_the_database_goes(body: dict[str, object]) -> Reply:
        if not written:
            await outage.__aenter__()
        written.append("A trip is planned.")
        return Reply(written[-1])

    llm.default = writing_while_the_database_goes
    jobs = await summaries(own_db, llm)
    try:
        assert await jobs.close_idle() == 0
    finally:
        await outage.__aexit__(None, None, None)

    said = [record for record in caplog.records if record.name == "bot.services.summaries"]
    assert [(record.levelno, record.exc_info) for record in said] == [(logging.WARNING, None)]
    assert "3 conversations wait" in said[0].getMessage()

    assert await jobs.close_idle() == 3
    assert set(await summarised(own_db)) == set(trips)
