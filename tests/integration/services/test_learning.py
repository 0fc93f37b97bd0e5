"""Learning through the real pipeline on both backends: the conversation service stores messages, the learner
reads them in batches with one call to the (fake, scripted) model, and the next prompts show what it learned —
only where they may."""

import asyncio
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from bot.container import learning_config
from bot.db.engine import DATABASE_FAULTS, Database
from bot.db.models import (
    BotOpinion,
    BotOpinionSource,
    BotState,
    Conversation,
    FactAssociation,
    Guild,
    Message,
    MoodHistory,
    ScheduledEvent,
    User,
    UserCommunicationStyle,
    UserFact,
    UserPreferences,
    UserRelationship,
)
from bot.db.repositories.facts import FactRepository, NewFact
from bot.db.repositories.guilds import GuildRepository
from bot.db.repositories.moods import MoodRepository
from bot.db.repositories.styles import StyleRepository
from bot.db.repositories.users import UserRepository
from bot.domain import mood as moods
from bot.domain.mood import Mood
from bot.domain.place import StatePlace
from bot.domain.style import CommunicationStyle
from bot.llm.chat import ChatModel
from bot.llm.embeddings import Embedder, LocalEmbedder, Vectors
from bot.llm.fallback import FallbackChatModel
from bot.services.companion import CompanionContext
from bot.services.conversation import ConversationService
from bot.services.learning import Learner, LearningConfig
from bot.services.personas import PersonaService
from bot.services.privacy import PrivacyService
from bot.services.reminders import ReminderService
from bot.settings import Settings
from tests.fakes.llm_server import Fail, FakeLLM, Reply, Step, count_tokens
from tests.support.chat import RecordingReply, chat_model, conversation_service, message
from tests.support.database_faults import failing_statements
from tests.support.embedding import shared_embedder
from tests.support.events import Clock, RecordingNotifier, ana
from tests.support.events import service as event_service
from tests.support.row_locks import waiting_for_row_locks

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

Answer = Callable[[str], str]  # the learning prompt's text → the model's answer


class ScriptedModel:
    """The fake model's behaviour: learning requests (they ask for JSON) get the scripted answers in order;
    replies get "ok". Each learning answer may read the prompt, as a model does (to cite a known fact's id)."""

    def __init__(self, llm: FakeLLM) -> None:
        self.answers: list[Answer] = []
        self.learning_prompts: list[str] = []
        llm.default = self

    def __call__(self, body: dict[str, Any]) -> Reply:
        if "response_format" not in body:
            return Reply("ok")
        prompt = "\n".join(str(m["content"]) for m in body["messages"])
        self.learning_prompts.append(prompt)
        answer = self.answers.pop(0) if self.answers else (lambda _: json.dumps({"facts": []}))
        return Reply(answer(prompt))


def fact_id(prompt: str, content: str) -> int:
    found = re.search(r"\[(\d+)\][^\n]*" + re.escape(content), prompt)
    assert found, f"the learning prompt does not show the known fact {content!r}:\n{prompt}"
    return int(found.group(1))


def extraction(**fields: Any) -> Answer:
    return lambda _prompt: json.dumps({"sentiment": 0.5, "intensity": 0.5, **fields})


def fact(content: str, kind: str, speaker: str = "Ana", **more: Any) -> dict[str, Any]:
    return {"speaker": speaker, "type": kind, "content": content, "confidence": 0.9, **more}


class TextsEmbedded:
    """The session's embedder, noting every text it is asked to embed."""

    def __init__(self, inner: LocalEmbedder) -> None:
        self.inner = inner
        self.model_name = inner.model_name
        self.dimension = inner.dimension
        self.texts: list[str] = []

    async def embed(self, texts: Sequence[str]) -> Vectors:
        self.texts.extend(texts)
        return await self.inner.embed(texts)

    async def embed_one(self, text: str) -> Vectors:
        self.texts.append(text)
        return await self.inner.embed_one(text)

    def start_one(self, text: str) -> "asyncio.Future[Vectors]":
        self.texts.append(text)
        return self.inner.start_one(text)

    async def aclose(self) -> None:
        pass


async def setup(
    db: Database,
    llm: FakeLLM,
    *,
    batch_messages: int = 1,
    clock: Callable[[], datetime] = lambda: NOW,
    embedder: Embedder | None = None,
    model: ChatModel | None = None,
    monotonic: Callable[[], float] | None = None,
    config: LearningConfig | None = None,
) -> tuple[ConversationService, Learner]:
    """A conversation service learning through a learner (``model``: the fake server's, by default;
    ``monotonic``: the learner's clock for how long a conversation has been quiet)."""
    learner = Learner(
        db,
        model or chat_model(llm.base_url),
        embedder or await shared_embedder(),
        PersonaService(db),
        config or LearningConfig(model="fake-model", batch_messages=batch_messages, workers=1),
        clock=clock,
        monotonic=monotonic,
    )
    service = conversation_service(db, llm, companion=CompanionContext(db, clock=clock), learner=learner, clock=clock)
    return service, learner


def system_prompt(llm: FakeLLM) -> str:
    replies = [r for r in llm.chat_requests if "response_format" not in r.body]
    return str(replies[-1].body["messages"][0]["content"])


async def say(service: ConversationService, learner: Learner, text: str, **where: Any) -> None:
    await service.handle(message(text, at=NOW, **where), RecordingReply())
    await learner.flush()


async def test_a_changed_fact_supersedes_the_old_one_and_the_prompt_holds_only_the_new(
    db: Database, llm: FakeLLM
) -> None:
    model = ScriptedModel(llm)
    service, learner = await setup(db, llm)
    learner.start()
    model.answers = [
        extraction(facts=[fact("works as a nurse", "work"), fact("lives in Berlin", "location")]),
        lambda prompt: json.dumps(
            {
                "facts": [
                    {
                        **fact("lives in Lisbon", "location"),
                        "action": "changed",
                        "existing_id": fact_id(prompt, "lives in Berlin"),
                    }
                ],
                "sentiment": 0.4,
            }
        ),
    ]
    await say(service, learner, "I'm a nurse in Berlin")
    await say(service, learner, "actually I moved to Lisbon last month")
    await service.handle(message("where do I live now?", at=NOW), RecordingReply())
    await learner.stop()

    system = system_prompt(llm)
    facts_section = system.split("## What you know about Ana")[1].split("##")[0]
    assert "lives in Lisbon" in facts_section and "works as a nurse" in facts_section
    assert "Berlin" not in system
    async with db.session() as session:
        rows = {f.fact_content: f for f in (await session.scalars(select(UserFact))).all()}
    berlin, lisbon = rows["lives in Berlin"], rows["lives in Lisbon"]
    assert not berlin.is_active and berlin.superseded_by == lisbon.id and berlin.valid_to == NOW
    assert lisbon.is_active and lisbon.scope == "dm" and lisbon.guild_id is None
    assert len(model.learning_prompts) == 3  # one call per batch (here: per message), none retried


async def test_a_fact_the_answer_changes_twice_leaves_one_current_version(db: Database, llm: FakeLLM) -> None:
    """A model that gives the same change twice (or two changes of one fact) in one answer: the first replaces
    the known fact; the second is read against what is current by then, so no second version is left beside it."""
    model = ScriptedModel(llm)
    service, learner = await setup(db, llm)
    learner.start()

    def changed(prompt: str) -> dict[str, Any]:
        return {**fact("lives in Lisbon", "location"), "action": "changed", "existing_id": fact_id(prompt, "Berlin")}

    model.answers = [
        extraction(facts=[fact("lives in Berlin", "location")]),
        lambda prompt: json.dumps({"facts": [changed(prompt), changed(prompt)]}),
    ]
    await say(service, learner, "I live in Berlin")
    await say(service, learner, "I moved to Lisbon! yes, Lisbon")
    await service.handle(message("where do I live now?", at=NOW), RecordingReply())
    await learner.stop()

    known = section(system_prompt(llm), "What you know about Ana") or ""
    assert known.count("lives in Lisbon") == 1 and "Berlin" not in known
    async with db.session() as session:
        rows = (await session.scalars(select(UserFact).order_by(UserFact.id))).all()
    assert [(f.fact_content, f.is_active) for f in rows] == [("lives in Berlin", False), ("lives in Lisbon", True)]
    assert rows[0].superseded_by == rows[1].id


async def test_a_known_fact_named_as_the_prompt_shows_its_id_is_changed_or_taken_back(
    db: Database, llm: FakeLLM
) -> None:
    """The prompt shows known facts as "[12] Ana (...)": a model that names one "[12]" or "#12" still changes or
    takes back that fact, rather than losing what the person said."""
    model = ScriptedModel(llm)
    service, learner = await setup(db, llm)
    learner.start()

    def answer(prompt: str) -> str:
        moved = {**fact("lives in Lisbon", "location"), "action": "changed"}
        quit_job = {**fact("works as a nurse", "work"), "action": "retracted"}
        moved["existing_id"] = f"[{fact_id(prompt, 'lives in Berlin')}]"
        quit_job["existing_id"] = f"#{fact_id(prompt, 'works as a nurse')}"
        return json.dumps({"facts": [moved, quit_job]})

    model.answers = [extraction(facts=[fact("works as a nurse", "work"), fact("lives in Berlin", "location")]), answer]
    await say(service, learner, "I'm a nurse in Berlin")
    await say(service, learner, "I quit nursing and moved to Lisbon")
    await learner.stop()

    async with db.session() as session:
        rows = {f.fact_content: f for f in (await session.scalars(select(UserFact))).all()}
    assert {content: row.is_active for content, row in rows.items()} == {
        "works as a nurse": False,
        "lives in Berlin": False,
        "lives in Lisbon": True,
    }
    assert rows["lives in Berlin"].superseded_by == rows["lives in Lisbon"].id


async def test_a_fact_restated_word_for_word_is_refreshed_without_being_embedded_again(
    db: Database, llm: FakeLLM
) -> None:
    model = ScriptedModel(llm)
    embedder = TextsEmbedded(await shared_embedder())
    service, learner = await setup(db, llm, embedder=embedder)
    learner.start()
    model.answers = [
        extraction(facts=[fact("plays the cello", "hobby")]),
        extraction(facts=[fact("plays the cello", "hobby"), fact("has a cat called Miso", "pet")]),
    ]
    await say(service, learner, "I play the cello")
    await say(service, learner, "cello practice again, then I fed Miso")
    await learner.stop()

    async with db.session() as session:
        rows = (await session.scalars(select(UserFact))).all()
    cello = [row for row in rows if row.fact_content == "plays the cello"]
    assert len(cello) == 1 and cello[0].confidence > 0.9  # the same fact, confirmed
    assert any(row.fact_content == "has a cat called Miso" and row.embedding is not None for row in rows)
    assert embedder.texts.count("plays the cello") == 1
    assert "has a cat called Miso" in embedder.texts


async def test_one_call_per_batch_and_the_rest_of_the_companion_appears_in_the_prompt(
    db: Database, llm: FakeLLM
) -> None:
    model = ScriptedModel(llm)
    service, learner = await setup(db, llm, batch_messages=3)
    learner.start()
    topics = [{"name": "bouldering", "sentiment": 0.9}]
    model.answers = [
        extraction(
            facts=[fact("loves bouldering", "hobby")],
            topics=topics,
            references=[{"speaker": "Ana", "kind": "nickname", "text": "Nana"}],
            follow_ups=[
                {"speaker": "Ana", "topic": "climbing exam", "date": "2026-11-27", "question": "How did it go?"}
            ],
        ),
        extraction(topics=topics),
        extraction(topics=topics),
    ]
    for i in range(9):
        await say(service, learner, f"bouldering again today!! 🧗 round {i}", guild=901, mention=True)
    assert len(model.learning_prompts) == 3  # nine messages, batches of three
    await service.handle(message("any bouldering tips?", guild=901, mention=True, at=NOW), RecordingReply())
    await learner.stop()  # drains the last, partial batch

    system = system_prompt(llm)
    assert "## What you know about Ana\n- loves bouldering" in system
    assert "## You and Ana" in system and "You call them: Nana." in system
    assert "## Your mood" in system
    assert "## Your opinions on what is being discussed\nYou love bouldering." in system  # formed: 3 discussions
    assert "## How Ana writes" in system
    async with db.session() as session:
        event = await session.scalar(select(ScheduledEvent))
        relationship = await session.scalar(select(UserRelationship))
        states = await session.scalar(select(func.count()).select_from(BotState))
        history = await session.scalar(select(func.count()).select_from(MoodHistory))
    assert event is not None and (event.event_type, event.title, event.status) == (
        "follow_up",
        "climbing exam",
        "pending",
    )
    assert event.trigger_at.date() == datetime(2026, 11, 27).date() and event.context["question"] == "How did it go?"
    assert relationship is not None and relationship.total_interactions == 4 and relationship.relationship_score > 0
    assert states == 1 and history is not None and history >= 1


async def test_an_unusable_answer_is_asked_once_more_then_the_batch_is_skipped_whole(
    db: Database, llm: FakeLLM
) -> None:
    model = ScriptedModel(llm)
    service, learner = await setup(db, llm, batch_messages=100)  # learned by hand below
    await service.handle(message("I'm a nurse in Berlin", at=NOW), RecordingReply())
    conversation = (await _conversations(db))[0]

    model.answers = [lambda _: "Sure! Ana is a nurse.", extraction(facts=[fact("works as a nurse", "work")])]
    outcome = await learner.learn(conversation)
    assert (outcome.status, outcome.llm_calls, outcome.facts_added) == ("learned", 2, 1)

    await service.handle(message("I also play chess", at=NOW), RecordingReply())
    model.answers = [lambda _: "not json", lambda _: '{"facts": [{"speaker": "Ana"']  # prose, then cut short
    outcome = await learner.learn(conversation)
    assert (outcome.status, outcome.llm_calls, outcome.facts_added) == ("skipped", 2, 0)
    assert (await learner.learn(conversation)).status == "nothing"  # skipped means done: not asked again
    async with db.session() as session:
        assert [f.fact_content for f in (await session.scalars(select(UserFact))).all()] == ["works as a nurse"]


async def test_an_unusable_entry_costs_only_itself_and_the_rest_of_the_batch_is_learned(
    db: Database, llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    """Small models often get one entry wrong (a birthday on 31 February, a fact too long): that one is dropped,
    with a log line saying why, and what else the answer says is learned, without asking again."""
    caplog.set_level(logging.INFO, logger="bot.services.learning")
    model = ScriptedModel(llm)
    service, learner = await setup(db, llm, batch_messages=100)  # learned by hand below
    await service.handle(
        message("I'm a nurse, born on 31 February, and my exam is on Friday", at=NOW), RecordingReply()
    )
    model.answers = [
        extraction(
            facts=[fact("works as a nurse", "work"), fact("x" * 301, "general")],
            birthdays=[{"speaker": "Ana", "month": 2, "day": 31}],
            follow_ups=[{"speaker": "Ana", "topic": "exam", "date": "2026-11-28", "question": "How was the exam?"}],
        )
    ]
    outcome = await learner.learn((await _conversations(db))[0])

    assert (outcome.status, outcome.llm_calls, outcome.facts_added) == ("learned", 1, 1)
    async with db.session() as session:
        facts = (await session.scalars(select(UserFact.fact_content))).all()
        events = (await session.scalars(select(ScheduledEvent))).all()
    assert facts == ["works as a nurse"]
    assert [(e.event_type, e.title) for e in events] == [("follow_up", "exam")]
    said = "\n".join(record.getMessage() for record in caplog.records)
    assert "facts.1.content" in said and "birthdays.0" in said and "no day 31" in said


async def test_an_answer_cut_short_by_its_max_tokens_is_asked_for_again_with_more_room(
    db: Database, llm: FakeLLM
) -> None:
    """Asking again with the same room would cut the answer off at the same place, and the batch would be skipped
    with everything it taught."""
    service, learner = await setup(db, llm, batch_messages=100)  # learned by hand below
    hobbies = [f"plays {game}" for game in ("chess", "go", "bridge", "poker", "tennis", "squash", "golf", "darts")]
    await service.handle(message(f"I'm a nurse in Berlin, and I {', '.join(hobbies)}", at=NOW), RecordingReply())
    conversation = (await _conversations(db))[0]
    facts = [fact("works as a nurse", "work"), *(fact(f"{hobby} every week", "hobby") for hobby in hobbies)]
    answer = json.dumps({"sentiment": 0.5, "intensity": 0.5, "facts": facts, "notes": "x" * 3000})

    def within_its_room(body: dict[str, Any]) -> Reply:  # as a model does: its answer ends at max_tokens
        if "response_format" not in body:
            return Reply("ok")
        room = int(body["max_tokens"])
        if count_tokens(answer) <= room:
            return Reply(answer)
        return Reply(answer[: room * 4], finish_reason="length")

    llm.default = within_its_room
    outcome = await learner.learn(conversation)

    assert (outcome.status, outcome.facts_added) == ("learned", 9)
    assert [r.body["max_tokens"] for r in llm.chat_requests if "response_format" in r.body] == [800, 1600]


THINKING = "Let me weigh who said what, and what of it is worth keeping. " * 4


def learning_within(room_needed: int, answer: str, *, cut_at: int = 0) -> Callable[[dict[str, Any]], Reply]:
    """A reasoning model that answers a learning request (``answer``) only when given ``room_needed`` tokens: given
    fewer, it runs out of them, after ``cut_at`` characters of the answer (0: while still thinking). Replies "ok"."""

    def answering(body: dict[str, Any]) -> Reply:
        if "response_format" not in body:
            return Reply("ok")
        if int(body["max_tokens"]) < room_needed:
            return Reply(answer[:cut_at], reasoning=THINKING, finish_reason="length")
        return Reply(answer, reasoning=THINKING)

    return answering


async def test_an_answer_the_model_thinks_away_all_its_room_on_is_asked_for_again_with_more(
    db: Database, llm: FakeLLM
) -> None:
    """A reasoning model's thinking counts in max_tokens: given too few, it thinks until they run out and no answer
    comes at all (finish_reason length, the thinking sent apart as vLLM sends it)."""
    service, learner = await setup(db, llm, batch_messages=100)  # learned by hand below
    await service.handle(message("I'm a nurse in Berlin", at=NOW), RecordingReply())
    conversation = (await _conversations(db))[0]
    answer = json.dumps({"sentiment": 0.5, "intensity": 0.5, "facts": [fact("works as a nurse", "work")]})

    llm.default = learning_within(1000, answer)
    outcome = await learner.learn(conversation)

    assert (outcome.status, outcome.llm_calls, outcome.facts_added) == ("learned", 2, 1)
    assert [r.body["max_tokens"] for r in llm.chat_requests if "response_format" in r.body] == [800, 1600]


@pytest.mark.parametrize("end", ["cut", "thought_away"])
async def test_an_answer_out_of_room_is_asked_for_again_with_the_room_replies_are_given(
    db: Database, llm: FakeLLM, end: str
) -> None:
    """Someone who gives a reasoning model room for its thinking (LLM_MAX_TOKENS=4000) has learning batches read
    with that room on the second try, not skipped after a try with twice the learner's 800 tokens."""
    settings = Settings(_env_file=None, llm_model="fake-model", llm_max_tokens=4000, learning_batch_messages=50)
    service, learner = await setup(db, llm, config=replace(learning_config(settings), workers=1))
    await service.handle(message("I'm a nurse in Berlin", at=NOW), RecordingReply())
    conversation = (await _conversations(db))[0]
    answer = json.dumps({"sentiment": 0.5, "intensity": 0.5, "facts": [fact("works as a nurse", "work")]})

    llm.default = learning_within(3000, answer, cut_at=40 if end == "cut" else 0)  # its thinking, or its answer
    outcome = await learner.learn(conversation)

    assert (outcome.status, outcome.llm_calls, outcome.facts_added) == ("learned", 2, 1)
    assert [r.body["max_tokens"] for r in llm.chat_requests if "response_format" in r.body] == [800, 4000]


async def test_a_batch_the_model_thinks_away_every_answer_on_is_skipped_and_the_next_one_is_learned_from(
    db: Database, llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    """Left unlearned, the batch would be read again at each new message, fail the same way, and keep everything
    said after it from ever being learned."""
    model = ScriptedModel(llm)
    service, learner = await setup(db, llm, batch_messages=100)  # learned by hand below
    await service.handle(message("a riddle with no end: " + "why? " * 50, at=NOW), RecordingReply())
    conversation = (await _conversations(db))[0]

    def thinking_forever(body: dict[str, Any]) -> Reply:
        if "response_format" in body and "riddle" in str(body["messages"]):
            return Reply("", reasoning=THINKING * 20, finish_reason="length")
        return model(body)

    llm.default = thinking_forever
    caplog.set_level(logging.WARNING, logger="bot.services.learning")
    outcome = await learner.learn(conversation)
    assert (outcome.status, outcome.llm_calls) == ("skipped", 2)
    skipped = [record for record in caplog.records if "skipping" in record.getMessage()]
    assert len(skipped) == 1 and skipped[0].exc_info is None
    assert (await learner.learn(conversation)).status == "nothing"  # not read again

    await service.handle(message("I'm a nurse in Berlin", at=NOW), RecordingReply())
    model.answers = [extraction(facts=[fact("works as a nurse", "work")])]
    outcome = await learner.learn(conversation)
    assert (outcome.status, outcome.facts_added) == ("learned", 1)
    assert "riddle" not in model.learning_prompts[-1]


FILTERED = "The response was filtered due to the prompt triggering Azure OpenAI's content management policy."


@pytest.mark.parametrize(
    "refusal",
    [
        Fail(400, message=FILTERED, code="content_filter"),
        Fail(400, message="Your request was rejected by the safety system.", code="content_policy_violation"),
        Reply("", finish_reason="content_filter"),  # the answer withheld, as Azure ends a filtered stream
    ],
    ids=["content_filter", "content_policy_violation", "withheld-answer"],
)
async def test_a_batch_refused_for_its_content_is_skipped_and_the_next_one_is_learned_from(
    db: Database, llm: FakeLLM, refusal: Step
) -> None:
    model = ScriptedModel(llm)
    service, learner = await setup(db, llm, batch_messages=100)  # learned by hand below
    await service.handle(message("something the filter does not like", at=NOW), RecordingReply())
    conversation = (await _conversations(db))[0]

    llm.script(*[refusal] * 20)  # refused however often it is asked
    outcome = await learner.learn(conversation)
    assert (outcome.status, outcome.llm_calls) == ("skipped", 1)
    assert (await learner.learn(conversation)).status == "nothing"  # not read again
    assert llm.remaining == 19, "asked once"
    llm._script.clear()

    await service.handle(message("I'm a nurse in Berlin", at=NOW), RecordingReply())
    model.answers = [extraction(facts=[fact("works as a nurse", "work")])]
    outcome = await learner.learn(conversation)
    assert (outcome.status, outcome.facts_added) == ("learned", 1)
    assert "filter does not like" not in model.learning_prompts[-1]
    async with db.session() as session:
        assert [f.fact_content for f in (await session.scalars(select(UserFact))).all()] == ["works as a nurse"]
        assert await session.scalar(select(func.count()).select_from(UserCommunicationStyle)) == 1


async def test_a_batch_refused_for_another_reason_is_kept_to_be_read_again(db: Database, llm: FakeLLM) -> None:
    """An endpoint refusing every request with 400 (a setting it does not take) must not cost what was said."""
    model = ScriptedModel(llm)
    service, learner = await setup(db, llm, batch_messages=100)  # learned by hand below
    await service.handle(message("I'm a nurse in Berlin", at=NOW), RecordingReply())
    conversation = (await _conversations(db))[0]

    llm.script(Fail(400, message="Unsupported value: 'temperature' does not support 0.2 with this model."))
    assert (await learner.learn(conversation)).status == "unavailable"

    model.answers = [extraction(facts=[fact("works as a nurse", "work")])]  # the setting put right
    assert (await learner.learn(conversation)).status == "learned"
    async with db.session() as session:
        assert [f.fact_content for f in (await session.scalars(select(UserFact))).all()] == ["works as a nurse"]


@pytest.mark.parametrize(
    "fallback",
    [
        Fail(400, message="response_format json_schema is not supported by this model"),
        Fail(404, message="The model `local-model` does not exist"),
    ],
    ids=["400", "404"],
)
async def test_a_batch_read_while_the_model_is_down_and_its_fallback_refuses_is_read_again_when_quiet(
    db: Database, llm: FakeLLM, fallback: Fail
) -> None:
    """The fallback model refusing the request says nothing of the model that was down: it may answer in a while,
    so the batch is read again once the conversation is quiet, not left until someone writes there again."""
    model = ScriptedModel(llm)
    down = True

    def answer(body: dict[str, Any]) -> Step:
        if "response_format" in body and body["model"] == "local-model":
            return fallback
        if "response_format" in body and down:
            return Fail(503)
        return model(body)

    now = [0.0]
    fallback_chain = FallbackChatModel(chat_model(llm.base_url, budget_s=0.3), ["local-model"])
    service, learner = await setup(db, llm, batch_messages=100, model=fallback_chain, monotonic=lambda: now[0])
    await service.handle(message("my interview is on Friday, and I'm a nurse in Berlin", at=NOW), RecordingReply())
    llm.default = answer
    learner.start()
    try:
        now[0] += learner.config.idle.total_seconds()
        assert learner.enqueue_idle() == 1  # quiet: its batch is read, while the model is down
        await learner.flush()
        assert learner.llm_calls == 1

        down = False
        model.answers = [extraction(facts=[fact("works as a nurse", "work")])]
        now[0] += learner.config.idle.total_seconds()
        assert learner.enqueue_idle() == 1  # still quiet: read again
        await learner.flush()
    finally:
        await learner.stop()
    async with db.session() as session:
        assert [f.fact_content for f in (await session.scalars(select(UserFact))).all()] == ["works as a nurse"]


@pytest.mark.parametrize("fallback", ["thinks_away", "content_filter"])
async def test_a_batch_the_fallback_cannot_read_while_the_model_is_down_is_read_again_when_quiet(
    db: Database, llm: FakeLLM, fallback: str
) -> None:
    """A fallback model that thinks through all its room on the batch (a slow local reasoning model, longer at it
    than the model asked for rests), or whose filter refuses it, says nothing of the model that was down: once that
    one is back, the batch is read, not skipped with everything it taught."""
    model = ScriptedModel(llm)
    down = True
    rest_clock = [1000.0]

    def answer(body: dict[str, Any]) -> Step:
        if "response_format" in body and body["model"] == "local-model":
            if fallback == "content_filter":
                return Fail(400, message=FILTERED, code="content_filter")
            rest_clock[0] += 61  # its thinking outlasts the rest of the model asked for
            return Reply("", reasoning=THINKING, finish_reason="length")
        if "response_format" in body and down:
            return Fail(503)
        return model(body)

    now = [0.0]
    chain = FallbackChatModel(chat_model(llm.base_url, budget_s=0.3), ["local-model"], clock=lambda: rest_clock[0])
    service, learner = await setup(db, llm, batch_messages=100, model=chain, monotonic=lambda: now[0])
    await service.handle(message("I'm a nurse in Berlin", at=NOW), RecordingReply())
    llm.default = answer
    learner.start()
    try:
        now[0] += learner.config.idle.total_seconds()
        assert learner.enqueue_idle() == 1  # quiet: its batch is read, while the model is down
        await learner.flush()

        down = False
        rest_clock[0] += 61
        model.answers = [extraction(facts=[fact("works as a nurse", "work")])]
        now[0] += learner.config.idle.total_seconds()
        assert learner.enqueue_idle() == 1  # still quiet: read again
        await learner.flush()
    finally:
        await learner.stop()
    async with db.session() as session:
        assert [f.fact_content for f in (await session.scalars(select(UserFact))).all()] == ["works as a nurse"]


async def test_a_batch_every_model_refuses_waits_for_new_messages_rather_than_being_asked_again_when_quiet(
    db: Database, llm: FakeLLM
) -> None:
    """A bad key is refused the same way each time: asking again each time the conversation is quiet would only
    repeat the refusal."""
    now = [0.0]
    model = chat_model(llm.base_url, budget_s=0.3)
    service, learner = await setup(db, llm, batch_messages=100, model=model, monotonic=lambda: now[0])
    await service.handle(message("I'm a nurse in Berlin", at=NOW), RecordingReply())
    llm.default = lambda body: Fail(401, message="Incorrect API key") if "response_format" in body else Reply("ok")
    learner.start()
    try:
        now[0] += learner.config.idle.total_seconds()
        assert learner.enqueue_idle() == 1
        await learner.flush()
        assert learner.llm_calls == 1
        now[0] += learner.config.idle.total_seconds()
        assert learner.enqueue_idle() == 0
    finally:
        await learner.stop()


@pytest.mark.parametrize("who", ["user", "guild"])
async def test_no_learning_from_someone_who_opted_out_or_where_it_is_off(db: Database, llm: FakeLLM, who: str) -> None:
    model = ScriptedModel(llm)
    service, learner = await setup(db, llm)
    learner.start()
    model.answers = [extraction(facts=[fact("lives in Berlin", "location")])]
    await say(service, learner, "I live in Berlin", guild=901, mention=True)  # learned: before the switch
    async with db.session() as session:
        if who == "user":
            user = await UserRepository(session).get_by_discord_id(11)
            assert user is not None
            (await UserRepository(session).preferences(user.id)).learning_opt_out = True
        else:
            guild = await GuildRepository(session).get_by_discord_id(901)
            assert guild is not None
            await GuildRepository(session).update_settings(guild.id, {"learning": False})
    service.forget_cached()
    model.answers = [extraction(facts=[fact("has a cat", "family")])]
    await say(service, learner, "my cat is called Miso", guild=901, mention=True)
    await learner.stop()

    assert len(model.learning_prompts) == 1  # nothing asked after the switch
    async with db.session() as session:
        assert [f.fact_content for f in (await session.scalars(select(UserFact))).all()] == ["lives in Berlin"]
    if who == "user":  # and what was learned is not used for them any more
        assert "What you know about Ana" not in system_prompt(llm) and "You and Ana" not in system_prompt(llm)


async def test_facts_stay_where_they_were_learned(db: Database, llm: FakeLLM) -> None:
    model = ScriptedModel(llm)
    service, learner = await setup(db, llm)
    learner.start()
    model.answers = [
        extraction(facts=[fact("is planning a surprise party for Ben", "event")]),
        extraction(facts=[fact("is allergic to cats", "general")]),
    ]
    await say(service, learner, "I'm planning a surprise party for Ben", guild=901, mention=True)
    await say(service, learner, "btw I'm allergic to cats")  # a DM
    await say(service, learner, "hello there", guild=902, mention=True, channel=600)
    other_guild = system_prompt(llm)
    await say(service, learner, "hello again", guild=901, mention=True)
    same_guild = system_prompt(llm)
    await say(service, learner, "hi in private")
    dm = system_prompt(llm)
    await learner.stop()

    assert "surprise party" not in other_guild and "allergic" not in other_guild
    assert "surprise party" in same_guild and "allergic" not in same_guild  # a DM fact never reaches a guild
    assert "allergic to cats" in dm and "surprise party" not in dm


@pytest.mark.parametrize("changed_in", [901, None], ids=["in_a_guild", "in_a_dm"])
async def test_a_fact_kept_everywhere_stays_everywhere_when_it_changes(
    db: Database, llm: FakeLLM, changed_in: int | None
) -> None:
    """A fact set with /memory for everywhere, then updated in one place, is known in its new form everywhere."""
    model = ScriptedModel(llm)
    service, learner = await setup(db, llm)
    learner.start()
    await say(service, learner, "hi")  # Ana is known to Hearth
    async with db.session() as session:
        ana = await UserRepository(session).get_by_discord_id(11)
    assert ana is not None
    await PrivacyService(db, await shared_embedder(), clock=lambda: NOW).remember(
        ana.id, None, "lives in Berlin", everywhere=True
    )
    model.answers = [
        lambda prompt: json.dumps(
            {
                "facts": [
                    {
                        **fact("lives in Lisbon", "location"),
                        "action": "changed",
                        "existing_id": fact_id(prompt, "lives in Berlin"),
                    }
                ]
            }
        )
    ]
    channels = {901: 700, 902: 600, None: 500}
    await say(
        service, learner, "I moved to Lisbon last month", guild=changed_in, mention=True, channel=channels[changed_in]
    )
    prompts = []
    for guild, channel in channels.items():
        await say(service, learner, "where do I live?", guild=guild, mention=True, channel=channel)
        prompts.append(section(system_prompt(llm), "What you know about Ana") or "")
    await learner.stop()

    assert ["lives in Lisbon" in known for known in prompts] == [True, True, True]
    assert not any("Berlin" in known for known in prompts)
    async with db.session() as session:
        rows = {f.fact_content: f for f in (await session.scalars(select(UserFact))).all()}
    berlin, lisbon = rows["lives in Berlin"], rows["lives in Lisbon"]
    assert not berlin.is_active and berlin.superseded_by == lisbon.id
    assert (lisbon.scope, lisbon.guild_id) == ("global", None)


def line_saying(prompt: str, words: str) -> int:
    """The number of the chat line holding ``words``, as the learning prompt shows it."""
    found = re.search(r"^\((\d+)\) [^\n]*" + re.escape(words), prompt, re.M)
    assert found, f"no chat line says {words!r}:\n{prompt}"
    return int(found.group(1))


async def sources(db: Database) -> dict[str, str | None]:
    """Each fact, and the text of the message it is linked to."""
    async with db.session() as session:
        said: dict[int | None, str] = dict((await session.execute(select(Message.id, Message.content))).all())
        facts = (await session.execute(select(UserFact.fact_content, UserFact.extracted_from_message_id))).all()
    return {content: said.get(source) for content, source in facts}


async def test_a_fact_is_linked_to_the_line_that_states_it_or_else_to_its_speakers_last(
    db: Database, llm: FakeLLM
) -> None:
    model = ScriptedModel(llm)
    service, learner = await setup(db, llm, batch_messages=3)
    learner.start()
    model.answers = [
        lambda prompt: json.dumps(
            {
                "facts": [
                    fact("plays the cello", "hobby", line=line_saying(prompt, "I play the cello")),
                    fact("runs on Sundays", "hobby", line=line_saying(prompt, "ok")),  # Hearth's line
                    fact("has a cat", "general", line=99),
                    fact("likes tea", "preference", line="two"),
                    fact("bakes bread", "hobby"),
                ]
            }
        )
    ]
    for text in ("I play the cello", "and I run on Sundays, bake bread, drink tea", "my cat says hi"):
        await service.handle(message(text, at=NOW), RecordingReply())
    await learner.stop()

    last = "my cat says hi"
    assert await sources(db) == {
        "plays the cello": "I play the cello",
        "runs on Sundays": last,
        "has a cat": last,
        "likes tea": last,
        "bakes bread": last,
    }


async def test_two_people_with_one_name_are_told_apart_when_learned_about(db: Database, llm: FakeLLM) -> None:
    """Discord names are not unique: two members both shown as "Alex" each keep the facts they stated."""
    model = ScriptedModel(llm)
    service, learner = await setup(db, llm, batch_messages=2)
    learner.start()

    def as_shown(prompt: str) -> str:
        """A careful model's answer: each fact under the speaker's name as its line shows it."""
        said = {"nurse": "works as a nurse", "pilot": "works as a pilot"}
        facts = []
        for words, content in said.items():
            found = re.search(r"^\((\d+)\) ([^:\n]+): [^\n]*" + words, prompt, re.M)
            assert found, prompt
            facts.append(fact(content, "work", speaker=found[2], line=int(found[1])))
        return json.dumps({"facts": facts})

    model.answers = [as_shown]
    await say(service, learner, "I'm a nurse", guild=901, mention=True, user=11, name="alex")
    await say(service, learner, "and I'm a pilot", guild=901, mention=True, user=12, name="alex")
    await learner.stop()

    async with db.session() as session:
        rows = (await session.execute(select(User.discord_id, UserFact.fact_content).join(UserFact))).all()
    assert sorted(map(tuple, rows)) == [(11, "works as a nurse"), (12, "works as a pilot")]


async def test_what_someone_says_about_another_person_is_not_learned_as_that_persons_fact(
    db: Database, llm: FakeLLM
) -> None:
    """Ben tells the channel Ana is moving: a model that files it under Ana, citing Ben's line, does not make it a
    fact about Ana, who never said so; what she says herself is learned."""
    model = ScriptedModel(llm)
    service, learner = await setup(db, llm, batch_messages=2)
    learner.start()
    model.answers = [
        lambda prompt: json.dumps(
            {
                "facts": [
                    fact("is moving to Berlin", "location", line=line_saying(prompt, "Ana is moving to Berlin")),
                    fact("works as a nurse", "work", line=line_saying(prompt, "I'm a nurse")),
                ]
            }
        )
    ]
    await say(service, learner, "I'm a nurse, night shifts again", guild=901, mention=True)
    await say(service, learner, "Ana is moving to Berlin next month!", guild=901, mention=True, user=12, name="ben")
    await learner.stop()

    assert await sources(db) == {"works as a nurse": "I'm a nurse, night shifts again"}


@pytest.mark.parametrize("said_by", ["Ana", "Ben"])
async def test_a_birthday_follow_up_or_nickname_is_learned_only_from_its_own_persons_line(
    db: Database, llm: FakeLLM, said_by: str
) -> None:
    """Ben tells the channel Ana's birthday, her driving test and what they call her: a model that files them under
    Ana, citing Ben's line, sets none of them for her; when she says so herself, they are all hers."""
    model = ScriptedModel(llm)
    service, learner = await setup(db, llm, batch_messages=2)
    learner.start()
    words = {"Ana": "my birthday is May 4", "Ben": "Ana's birthday is May 4"}

    def answer(prompt: str) -> str:
        line = line_saying(prompt, words[said_by])
        ask = {"topic": "driving test", "date": "2026-11-28", "question": "How did the driving test go?"}
        return json.dumps(
            {
                "birthdays": [{"speaker": "Ana", "month": 5, "day": 4, "line": line}],
                "follow_ups": [{"speaker": "Ana", "line": line, **ask}],
                "references": [{"speaker": "Ana", "kind": "nickname", "text": "Bananas", "line": line}],
            }
        )

    model.answers = [answer]
    ana = "my birthday is May 4, my driving test is on Friday, and call me Bananas"
    ben = "Ana's birthday is May 4, her driving test is on Friday, and we call her Bananas"
    await say(service, learner, ana, guild=901, mention=True)
    await say(service, learner, ben, guild=901, mention=True, user=12, name="ben")
    await learner.stop()

    async with db.session() as session:
        ana_id = (await session.scalars(select(User.id).where(User.discord_id == 11))).one()
        birthday = (await UserRepository(session).preferences(ana_id)).birthday_month
        events = sorted((await session.scalars(select(ScheduledEvent.event_type))).all())
        references = (await session.scalars(select(UserRelationship.shared_references))).all()
    nicknames = sorted(n for r in references for n in r.get("nicknames", ()))
    if said_by == "Ana":
        assert (birthday, events, nicknames) == (5, ["birthday", "follow_up"], ["Bananas"])
    else:
        assert (birthday, events, nicknames) == (None, [], [])


async def test_a_message_deleted_while_the_model_reads_it_teaches_nothing(db: Database, llm: FakeLLM) -> None:
    service, learner = await setup(db, llm)
    deletions: list[asyncio.Task[None]] = []

    async def delete_the_message() -> None:
        async with db.session() as session:
            await session.execute(delete(Message).where(Message.content == "I'm a nurse"))

    def model(body: dict[str, Any]) -> Reply:
        if "response_format" not in body:
            return Reply("ok")
        deletions.append(asyncio.create_task(delete_the_message()))  # its author deletes it meanwhile
        answer = json.dumps({"facts": [fact("works as a nurse", "work", line=1)]})
        return Reply(answer, chunk_size=16, delay_between_chunks=0.1)

    llm.default = model
    learner.start()
    await say(service, learner, "I'm a nurse")
    await learner.stop()
    await asyncio.gather(*deletions)
    assert len(deletions) == 1 and await sources(db) == {}


@pytest.mark.parametrize("change", ["optout", "forget-all"])
async def test_someone_who_opts_out_or_is_erased_while_the_model_reads_them_is_not_learned_about(
    db: Database, llm: FakeLLM, change: str
) -> None:
    service, learner = await setup(db, llm, batch_messages=2)
    privacy = PrivacyService(db, await shared_embedder())
    prompts: list[str] = []

    async def model(body: dict[str, Any]) -> Reply:
        if "response_format" not in body:
            return Reply("ok")
        prompts.append("\n".join(str(m["content"]) for m in body["messages"]))
        if len(prompts) > 1:  # read again: only Ben's line is left
            return Reply(json.dumps({"facts": [fact("plays chess", "hobby", speaker="Ben")]}))
        async with db.session() as session:
            ana = await UserRepository(session).get_by_discord_id(11)
        assert ana is not None
        if change == "optout":  # Ana runs /optout while the model reads her
            await privacy.set_learning(ana.id, opted_out=True)
        else:
            await privacy.forget_everything(11)
        answer = {
            "sentiment": 0.8,
            "intensity": 0.8,
            "facts": [fact("has a cat called Miso", "family"), fact("plays chess", "hobby", speaker="Ben")],
            "topics": [{"name": "cats", "sentiment": 0.9}],
            "references": [{"speaker": "Ana", "kind": "nickname", "text": "Nana"}],
            "follow_ups": [{"speaker": "Ana", "topic": "vet visit", "date": "2026-11-27", "question": "How's Miso?"}],
            "birthdays": [{"speaker": "Ana", "month": 5, "day": 4}],
        }
        return Reply(json.dumps(answer))

    llm.default = model
    learner.start()
    await say(service, learner, "my cat Miso sees the vet Friday, my birthday is May 4", guild=901, mention=True)
    await say(service, learner, "I play chess every evening", guild=901, mention=True, user=12, name="ben")
    await learner.stop()

    assert await sources(db) == {"plays chess": "I play chess every evening"}
    assert len(prompts) == 2 and "Miso" not in prompts[1]  # the batch was read again, without her
    assert await learned_about(db, 11) == ({} if change == "optout" else None)


async def test_hearths_replies_to_someone_who_opted_out_are_not_shown_to_the_learner(
    db: Database, llm: FakeLLM
) -> None:
    """In a channel where Ana opted out and Ben did not, the learner reads Ben's talk with Hearth, not Hearth's
    answers to Ana, which retell what she said."""
    service, learner = await setup(db, llm, batch_messages=4)
    prompts: list[str] = []

    def model(body: dict[str, Any]) -> Reply:
        if "response_format" in body:
            prompts.append("\n".join(str(m["content"]) for m in body["messages"]))
            return Reply(json.dumps({"facts": []}))
        said = str(body["messages"][-1]["content"])
        if "Miso" in said:
            return Reply("Good luck to Miso at the vet on Friday, Ana!")
        return Reply("Chess every evening, Ben? Impressive!" if "chess" in said else "Hello, Ana!")

    llm.default = model
    learner.start()
    await say(service, learner, "hi there", guild=901, mention=True)
    async with db.session() as session:
        ana = await UserRepository(session).get_by_discord_id(11)
    assert ana is not None
    await PrivacyService(db, await shared_embedder()).set_learning(ana.id, opted_out=True)
    service.forget_cached()
    await say(service, learner, "my cat Miso sees the vet on Friday", guild=901, mention=True)
    await say(service, learner, "I play chess every evening", guild=901, mention=True, user=12, name="ben")
    await say(service, learner, "and I drink a lot of tea", guild=901, mention=True, user=12, name="ben")
    await learner.stop()

    [prompt] = prompts
    assert "I play chess every evening" in prompt and "Impressive!" in prompt
    assert "Miso" not in prompt and "hi there" not in prompt and "Hello, Ana" not in prompt


async def learned_about(db: Database, discord_id: int) -> dict[str, int] | None:
    """What learning wrote about someone, beyond facts: table → rows (None: the person is not stored)."""
    async with db.session() as session:
        user = await UserRepository(session).get_by_discord_id(discord_id)
        if user is None:
            return None
        birthday = (await UserRepository(session).preferences(user.id)).birthday_month
        found = {"birthday": 0 if birthday is None else 1}
        for column in (
            UserCommunicationStyle.user_id,
            UserRelationship.user_id,
            ScheduledEvent.user_id,
            BotOpinionSource.user_id,
            MoodHistory.trigger_user_id,
        ):
            found[str(column)] = int(
                await session.scalar(select(func.count()).select_from(column.table).where(column == user.id)) or 0
            )
    return {table: rows for table, rows in found.items() if rows}


async def test_messages_never_learned_from_are_caught_up_after_a_restart(db: Database, llm: FakeLLM) -> None:
    model = ScriptedModel(llm)
    service, _ = await setup(db, llm, batch_messages=100)
    await service.handle(message("I'm a nurse in Berlin", at=NOW), RecordingReply())  # then the bot stopped

    _, restarted = await setup(db, llm)
    model.answers = [extraction(facts=[fact("works as a nurse", "work")])]
    assert await restarted.catch_up() == 1
    restarted.start()
    await restarted.stop()
    assert await restarted.catch_up() == 0
    async with db.session() as session:
        assert [f.fact_content for f in (await session.scalars(select(UserFact))).all()] == ["works as a nurse"]


async def test_two_processes_started_together_learn_each_batch_once(pg: Database, llm: FakeLLM) -> None:
    """Two processes that both catch up on a conversation (here each runs every shard, as one without
    SHARD_IDS does) read the same batch at once when they start together: only the first answer written counts."""
    service, _ = await setup(pg, llm, batch_messages=100)
    await service.handle(message("I'm a nurse, and my exam is on Tuesday", at=NOW), RecordingReply())  # then a stop
    exam = {"speaker": "Ana", "topic": "exam", "date": "2026-11-25", "question": "How did the exam go?"}
    read = extraction(facts=[fact("works as a nurse", "work")], follow_ups=[exam])("")

    def model(body: dict[str, Any]) -> Reply:
        if "response_format" not in body:
            return Reply("ok")
        return Reply(read, chunk_size=16, delay_between_chunks=0.05)  # both read it before either has written

    llm.default = model
    first, second = (await setup(pg, llm))[1], (await setup(pg, llm))[1]
    assert (await first.catch_up(), await second.catch_up()) == (1, 1)
    first.start()
    second.start()
    await asyncio.gather(first.stop(), second.stop())
    assert len([r for r in llm.chat_requests if "response_format" in r.body]) == 2
    async with pg.session() as session:
        assert [f.fact_content for f in (await session.scalars(select(UserFact))).all()] == ["works as a nurse"]
        assert [e.title for e in (await session.scalars(select(ScheduledEvent))).all()] == ["exam"]
        assert list((await session.scalars(select(UserRelationship.total_interactions))).all()) == [1]


async def test_each_process_catches_up_on_learning_in_its_own_shards_conversations(db: Database, llm: FakeLLM) -> None:
    """Two processes, each running one of two shards: at start, each learns from what was never learned in the
    conversations it hears (its guilds'; DMs are shard 0's) and leaves the others' to them, so no batch is read by
    both and paid for twice."""
    model = ScriptedModel(llm)
    service, _ = await setup(db, llm, batch_messages=100)
    said: dict[str, dict[str, Any]] = {
        "I'm a nurse": {},  # a DM
        "I play chess": {"guild": 901, "channel": 501, "mention": True},  # (901 >> 22) % 2: shard 0
        "I live in Lyon": {"guild": 1 << 22, "channel": 502, "mention": True},  # shard 1
    }
    for text, where in said.items():
        await service.handle(message(text, at=NOW, **where), RecordingReply())  # then the bots stopped

    async def process(shard: int) -> Learner:
        config = LearningConfig(model="fake-model", batch_messages=1, workers=1, shards=((shard,), 2))
        return Learner(db, chat_model(llm.base_url), await shared_embedder(), PersonaService(db), config)

    def read() -> list[str]:
        found = [text for prompt in model.learning_prompts for text in said if text in prompt]
        model.learning_prompts.clear()
        return sorted(found)

    for shard, own in ((0, ["I play chess", "I'm a nurse"]), (1, ["I live in Lyon"])):
        learner = await process(shard)
        assert await learner.catch_up() == len(own)
        learner.start()
        await learner.stop()
        assert read() == own


async def _conversations(db: Database) -> list[int]:
    async with db.session() as session:
        return list((await session.scalars(select(Conversation.id).order_by(Conversation.id))).all())


async def test_shared_interests_link_members_of_one_guild_only(db: Database, llm: FakeLLM) -> None:
    model = ScriptedModel(llm)
    service, learner = await setup(db, llm)
    assert "What you know about" not in (await _first_prompt(service, llm))  # no state yet: no sections
    learner.start()
    await learner.flush()  # "hello": nothing to learn
    model.answers = [
        extraction(facts=[fact("loves bouldering", "hobby")]),
        extraction(facts=[fact("loves bouldering", "hobby", speaker="Ben")]),
        extraction(facts=[fact("loves bouldering", "hobby", speaker="Cleo")]),  # another guild
        extraction(facts=[fact("loves bouldering", "hobby", speaker="Dan")]),  # a DM
    ]
    await say(service, learner, "bouldering is my thing", guild=901, mention=True)
    await say(service, learner, "me too, bouldering!", guild=901, mention=True, user=12, name="ben")
    await say(service, learner, "I boulder as well", guild=902, mention=True, user=13, name="cleo", channel=600)
    await say(service, learner, "bouldering rocks", user=14, name="dan", channel=700)
    await learner.stop()

    async with db.session() as session:
        owners = {f.id: f.user_id for f in (await session.scalars(select(UserFact))).all()}
        users = {u.id: u.discord_username for u in (await session.scalars(select(User))).all()}
        links = (await session.scalars(select(FactAssociation))).all()
    assert [(users[owners[a.fact_id_1]], users[owners[a.fact_id_2]], a.association_type) for a in links] == [
        ("ana", "ben", "shared_interest")
    ]


async def _first_prompt(service: ConversationService, llm: FakeLLM) -> str:
    await service.handle(message("hello, nice to meet you", guild=901, mention=True, at=NOW), RecordingReply())
    prompt = system_prompt(llm)
    for section in ("You and Ana", "Your mood", "How Ana writes", "Your opinions"):
        assert section not in prompt
    return prompt


async def test_a_speaker_with_many_facts_shows_the_model_those_closest_to_the_talk(db: Database, llm: FakeLLM) -> None:
    model = ScriptedModel(llm)
    service, learner = await setup(db, llm, batch_messages=100)
    await service.handle(message("hi", at=NOW), RecordingReply())
    embedder = await shared_embedder()
    unrelated = [f"collects stamps from country number {i}" for i in range(10)]
    async with db.session() as session:
        ana = await UserRepository(session).get_by_discord_id(11)
        assert ana is not None
        vectors = await embedder.embed([*unrelated, "lives in Berlin"])
        for i, content in enumerate([*unrelated, "lives in Berlin"]):
            new = NewFact(
                user_id=ana.id, fact_type="general", content=content, scope="dm", guild_id=None, learned_at=NOW
            )
            await FactRepository(session).add(new, vectors[i], embedder.model_name)
    await service.handle(message("I just moved out of my flat in Berlin", at=NOW), RecordingReply())

    await learner.learn((await _conversations(db))[0])
    known = model.learning_prompts[-1].split("Chat:")[0]
    assert "lives in Berlin" in known
    assert known.count("collects stamps") == learner.config.known_facts - 1


async def test_a_follow_up_is_dropped_when_the_user_brings_the_topic_up_first(db: Database, llm: FakeLLM) -> None:
    model = ScriptedModel(llm)
    service, learner = await setup(db, llm)
    learner.start()
    exam = {"speaker": "Ana", "topic": "exam", "date": "2026-11-25", "question": "How did the exam go?"}
    trip = {"speaker": "Ana", "topic": "trip", "date": "2026-11-28", "question": "How was the trip?"}
    model.answers = [extraction(follow_ups=[exam, trip]), extraction()]
    await say(service, learner, "my exam is on Wednesday and then a trip on Saturday")
    exam_day = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)

    async def states_after(text: str) -> dict[str, str]:
        await service.handle(message(text, at=exam_day), RecordingReply())
        await learner.flush()
        async with db.session() as session:
            return {e.title: e.status for e in (await session.scalars(select(ScheduledEvent))).all()}

    # What she forwards on the day is someone else's news of their exam.
    assert await states_after("look!\n[forwarded]\nthe exam went great") == {"exam": "pending", "trip": "pending"}
    assert await states_after("the exam went great, by the way!") == {"exam": "cancelled", "trip": "pending"}
    await learner.stop()


async def test_a_follow_up_is_kept_when_its_topic_comes_up_before_its_day(db: Database, llm: FakeLLM) -> None:
    """Ana, in New York, says on Monday that her interview is on Friday. Being nervous about it on Wednesday, or
    late on Thursday evening (already Friday in UTC), tells Hearth nothing of how it went: the question is still
    asked. Telling Hearth on Friday afternoon that it went well answers it, and it is dropped."""
    model = ScriptedModel(llm)
    clock = Clock(NOW)  # Monday 23 November
    service, learner = await setup(db, llm, clock=clock)
    learner.start()
    await ana(db, tz="America/New_York")
    ask = {"speaker": "Ana", "topic": "interview", "date": "2026-11-27", "question": "How did the interview go?"}
    model.answers = [extraction(follow_ups=[ask])]

    async def at(moment: datetime, text: str) -> str:
        clock.now = moment
        await service.handle(message(text, at=moment), RecordingReply())
        await learner.flush()
        async with db.session() as session:
            return str(await session.scalar(select(ScheduledEvent.status)))

    assert await at(NOW, "my interview is on Friday!") == "pending"
    assert await at(datetime(2026, 11, 25, 17, 0, tzinfo=UTC), "I'm so nervous about the interview") == "pending"
    thursday_night = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)  # 22:00 on Thursday in New York
    assert await at(thursday_night, "can't sleep, the interview is in the morning") == "pending"
    friday_afternoon = datetime(2026, 11, 27, 20, 0, tzinfo=UTC)  # 15:00 on Friday in New York
    assert await at(friday_afternoon, "the interview went well!") == "cancelled"
    await learner.stop()


async def test_a_follow_up_held_back_past_midnight_is_dropped_when_its_day_brings_it_up(
    db: Database, llm: FakeLLM
) -> None:
    """Ana keeps quiet hours from 17:00 to 09:00, so the question about her Friday interview waits for Saturday
    morning. Telling Hearth on Friday evening that it went well answers it all the same: it is dropped, and she is
    not asked on Saturday how the interview she already told of went."""
    model = ScriptedModel(llm)
    clock = Clock(NOW)  # Monday 23 November
    service, learner = await setup(db, llm, clock=clock)
    learner.start()
    await ana(db, tz="Europe/Lisbon", quiet=(time(17, 0), time(9, 0)))  # Lisbon is on UTC in November
    ask = {"speaker": "Ana", "topic": "interview", "date": "2026-11-27", "question": "How did the interview go?"}
    model.answers = [extraction(follow_ups=[ask])]
    await say(service, learner, "my interview is on Friday!")
    notifier = RecordingNotifier()
    events = event_service(db, llm, notifier, clock)

    clock.now = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)  # its time, in her quiet hours: held to Saturday 09:00
    assert await events.tick() == {"postponed": 1}
    clock.now = datetime(2026, 11, 27, 20, 0, tzinfo=UTC)  # still Friday
    await service.handle(message("the interview went well!", at=clock.now), RecordingReply())
    await learner.flush()
    await learner.stop()

    clock.now = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    assert await events.tick() == {}
    assert notifier.sent == []
    async with db.session() as session:
        assert await session.scalar(select(ScheduledEvent.status)) == "cancelled"


async def test_a_follow_up_held_back_keeps_its_day_in_a_new_time_zone(db: Database, llm: FakeLLM) -> None:
    """Ana, in Tokyo, keeps quiet hours from 17:00 to 09:00: the question about her Friday interview, due at 18:00
    there, waits. She then flies to Honolulu, where it is still Thursday night, and sets her time zone. Being
    unable to sleep for the interview tomorrow tells Hearth nothing of how it went; telling it on Friday evening
    there that it went well does."""
    model = ScriptedModel(llm)
    clock = Clock(NOW)  # Monday 23 November, 21:00 in Tokyo
    service, learner = await setup(db, llm, clock=clock)
    learner.start()
    user = await ana(db, tz="Asia/Tokyo", quiet=(time(17, 0), time(9, 0)))
    ask = {"speaker": "Ana", "topic": "interview", "date": "2026-11-27", "question": "How did the interview go?"}
    model.answers = [extraction(follow_ups=[ask])]
    await say(service, learner, "my interview is on Friday!")
    events = event_service(db, llm, RecordingNotifier(), clock)

    async def at(moment: datetime, text: str) -> str:
        clock.now = moment
        await service.handle(message(text, at=moment), RecordingReply())
        await learner.flush()
        async with db.session() as session:
            return str(await session.scalar(select(ScheduledEvent.status)))

    clock.now = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)  # 18:00 on Friday in Tokyo, in her quiet hours
    assert await events.tick() == {"postponed": 1}
    clock.now = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)  # 23:30 on Thursday in Honolulu
    await ReminderService(db, clock=clock).set_timezone(user, "Pacific/Honolulu")
    thursday_night = datetime(2026, 11, 27, 9, 45, tzinfo=UTC)
    assert await at(thursday_night, "can't sleep, the interview is tomorrow") == "pending"
    friday_evening = datetime(2026, 11, 28, 5, 0, tzinfo=UTC)  # 19:00 on Friday in Honolulu
    assert await at(friday_evening, "the interview went well!") == "cancelled"
    await learner.stop()


async def test_a_follow_up_dated_years_ahead_is_left_out_and_does_not_hold_up_its_topic(
    db: Database, llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    """A model that gets the year wrong ("on Friday" as 2029-11-27) would park the interview's follow-up for years,
    and with one pending per topic, the right date said next could not be kept: it is left out, with a log line,
    as is one already past. A plan months ahead is still asked about."""
    caplog.set_level(logging.INFO, logger="bot.services.learning")
    model = ScriptedModel(llm)
    service, learner = await setup(db, llm)
    learner.start()
    ask = {"speaker": "Ana", "question": "How did it go?"}
    model.answers = [
        extraction(
            follow_ups=[
                {**ask, "topic": "interview", "date": "2029-11-27"},
                {**ask, "topic": "exam", "date": "2025-11-27"},
                {**ask, "topic": "wedding", "date": "2027-05-16"},
            ]
        ),
        extraction(follow_ups=[{**ask, "topic": "interview", "date": "2026-11-27"}]),
    ]
    await say(service, learner, "my interview is on Friday, my exam too, and the wedding is on 15 May!")
    await say(service, learner, "it is at 9 on Friday, wish me luck")
    await learner.stop()
    async with db.session() as session:
        events = (await session.scalars(select(ScheduledEvent).order_by(ScheduledEvent.trigger_at))).all()
    assert [(e.title, e.status, e.trigger_at) for e in events] == [
        ("interview", "pending", datetime(2026, 11, 27, 18, 0, tzinfo=UTC)),
        ("wedding", "pending", datetime(2027, 5, 16, 18, 0, tzinfo=UTC)),
    ]
    said = "\n".join(record.getMessage() for record in caplog.records)
    assert "2029-11-27" in said and "2025-11-27" in said


@pytest.mark.parametrize(
    ("zone", "evening"),
    [
        ("Australia/Brisbane", datetime(2026, 11, 27, 8, 0, tzinfo=UTC)),  # 18:00 at UTC+10
        ("America/New_York", datetime(2026, 11, 27, 23, 0, tzinfo=UTC)),  # 18:00 at UTC-5
        ("UTC", datetime(2026, 11, 27, 18, 0, tzinfo=UTC)),  # no zone set
        ("America/Nowhere_New", datetime(2026, 11, 27, 18, 0, tzinfo=UTC)),  # set where the zone data is newer
    ],
)
async def test_a_follow_up_is_asked_on_the_evening_of_its_day_in_its_persons_time_zone(
    db: Database, llm: FakeLLM, zone: str, evening: datetime
) -> None:
    """ "My interview is on Friday" from someone in Brisbane is asked about on their Friday evening, not at 04:00 on
    their Saturday; a zone this host's zone data does not know reads as UTC."""
    model = ScriptedModel(llm)
    service, learner = await setup(db, llm)
    learner.start()
    await ana(db, tz=zone)
    ask = {"speaker": "Ana", "topic": "interview", "date": "2026-11-27", "question": "How did it go?"}
    model.answers = [extraction(follow_ups=[ask])]
    await say(service, learner, "my interview is on Friday!")
    await learner.stop()
    async with db.session() as session:
        events = (await session.scalars(select(ScheduledEvent))).all()
    assert [(e.title, e.trigger_at) for e in events] == [("interview", evening)]


def asked_the_day_after_tomorrow(prompt: str) -> str:
    """Ana's "my interview is tomorrow", as a model reads it against the prompt's "Today is ...": asked about the
    day after."""
    today = re.search(r"Today is \w+ (\d{4}-\d\d-\d\d)", prompt)
    assert today, prompt
    day = datetime.fromisoformat(today.group(1)) + timedelta(days=2)
    ask = {"speaker": "Ana", "topic": "interview", "date": f"{day:%Y-%m-%d}", "question": "How did it go?"}
    return extraction(follow_ups=[ask])(prompt)


@pytest.mark.parametrize(
    ("zone", "at", "ask"),
    [
        # 06:00 on Tuesday 24 November in Brisbane: the interview is on Wednesday, asked about on Thursday evening.
        ("Australia/Brisbane", datetime(2026, 11, 23, 20, 0, tzinfo=UTC), datetime(2026, 11, 26, 8, 0, tzinfo=UTC)),
        # 21:00 on Monday 23 November in New York: the interview is on Tuesday, asked about on Wednesday evening.
        ("America/New_York", datetime(2026, 11, 24, 2, 0, tzinfo=UTC), datetime(2026, 11, 25, 23, 0, tzinfo=UTC)),
    ],
)
async def test_tomorrow_is_read_from_the_day_it_is_where_the_speaker_lives(
    db: Database, llm: FakeLLM, zone: str, at: datetime, ask: datetime
) -> None:
    """When it is already tomorrow in UTC, or still yesterday, for someone with their time zone set, the model is told
    the day it is for them, so "tomorrow" is their tomorrow."""
    model = ScriptedModel(llm)
    service, learner = await setup(db, llm, batch_messages=100, clock=lambda: at)  # learned by hand below
    await ana(db, tz=zone)
    model.answers = [asked_the_day_after_tomorrow]
    await service.handle(message("my interview is tomorrow, wish me luck!", at=at), RecordingReply())
    await learner.learn((await _conversations(db))[0])
    async with db.session() as session:
        events = (await session.scalars(select(ScheduledEvent))).all()
    assert [(e.title, e.trigger_at) for e in events] == [("interview", ask)]


async def test_tomorrow_is_read_from_the_day_it_was_said_when_learned_after_midnight(
    db: Database, llm: FakeLLM
) -> None:
    """A batch learned after midnight (the conversation went quiet at 23:59, the model was down, the guild's budget
    was spent for the day) still reads "tomorrow" from the day it was said."""
    model = ScriptedModel(llm)
    clock = Clock(datetime(2026, 11, 23, 23, 55, tzinfo=UTC))
    service, learner = await setup(db, llm, batch_messages=100, clock=clock)  # learned by hand below
    model.answers = [asked_the_day_after_tomorrow]
    await service.handle(message("my interview is tomorrow, wish me luck!", at=clock.now), RecordingReply())
    clock.now = datetime(2026, 11, 24, 0, 5, tzinfo=UTC)
    await learner.learn((await _conversations(db))[0])
    async with db.session() as session:
        events = (await session.scalars(select(ScheduledEvent))).all()
    # Said on Monday: the interview is on Tuesday, asked about on Wednesday evening.
    assert [(e.title, e.trigger_at) for e in events] == [("interview", datetime(2026, 11, 25, 18, 0, tzinfo=UTC))]


async def test_a_mentioned_birthday_is_greeted_unless_one_was_set_already(db: Database, llm: FakeLLM) -> None:
    model = ScriptedModel(llm)
    service, learner = await setup(db, llm)
    learner.start()
    model.answers = [
        extraction(birthdays=[{"speaker": "Ana", "month": 3, "day": 3}]),
        extraction(birthdays=[{"speaker": "Ana", "month": 7, "day": 9}]),  # a joke, or someone else's: kept as set
    ]
    await say(service, learner, "my birthday is on 3 March!")
    await say(service, learner, "haha or maybe 9 July")
    await learner.stop()
    async with db.session() as session:
        events = (await session.scalars(select(ScheduledEvent).where(ScheduledEvent.status == "pending"))).all()
    assert [(e.event_type, e.trigger_at) for e in events] == [("birthday", datetime(2027, 3, 3, 10, 0, tzinfo=UTC))]


async def test_a_birthday_is_learned_with_the_rest_of_its_batch_or_not_at_all(db: Database, llm: FakeLLM) -> None:
    """The database drops while the batch that holds Ana's job and birthday is written: neither is kept, and the
    batch read again teaches both, rather than the job alone with the birthday lost for good."""
    model = ScriptedModel(llm)
    service, learner = await setup(db, llm, batch_messages=100)  # learned by hand below
    taught = extraction(facts=[fact("works as a nurse", "work")], birthdays=[{"speaker": "Ana", "month": 3, "day": 3}])
    model.answers = [taught, taught]
    await service.handle(message("I'm a nurse, and my birthday is on 3 March!", at=NOW), RecordingReply())
    conversation = (await _conversations(db))[0]

    async def learned() -> tuple[list[str], int | None, list[str]]:
        async with db.session() as session:
            facts = (await session.scalars(select(UserFact.fact_content))).all()
            month = await session.scalar(select(UserPreferences.birthday_month))
            events = (await session.scalars(select(ScheduledEvent.event_type))).all()
        return list(facts), month, list(events)

    with failing_statements(db, "INSERT", "scheduled_events"), pytest.raises(DATABASE_FAULTS):
        await learner.learn(conversation)
    assert await learned() == ([], None, [])
    assert (await learner.learn(conversation)).status == "learned"
    assert await learned() == (["works as a nurse"], 3, ["birthday"])


@pytest.mark.parametrize("year", [0, 2027, 2026])
async def test_a_birthday_with_a_year_no_one_here_was_born_in_is_greeted_without_it(
    db: Database, llm: FakeLLM, year: int
) -> None:
    """Small models write 0 for a year nobody gave, or the year of the birthday itself: Ana is still greeted on
    3 March, and no such birth year is kept for her."""
    model = ScriptedModel(llm)
    service, learner = await setup(db, llm)
    learner.start()
    model.answers = [extraction(birthdays=[{"speaker": "Ana", "month": 3, "day": 3, "year": year}])]
    await say(service, learner, "my birthday is on 3 March!")
    await learner.stop()
    async with db.session() as session:
        user_id = await session.scalar(select(User.id))
        assert user_id is not None
        preferences = await UserRepository(session).preferences(user_id)
        events = (await session.scalars(select(ScheduledEvent).where(ScheduledEvent.status == "pending"))).all()
    assert (preferences.birthday_month, preferences.birthday_day, preferences.birth_year) == (3, 3, None)
    assert [(e.event_type, e.trigger_at) for e in events] == [("birthday", datetime(2027, 3, 3, 10, 0, tzinfo=UTC))]


async def test_a_birthday_with_a_real_birth_year_keeps_it(db: Database, llm: FakeLLM) -> None:
    model = ScriptedModel(llm)
    service, learner = await setup(db, llm)
    learner.start()
    model.answers = [extraction(birthdays=[{"speaker": "Ana", "month": 3, "day": 3, "year": 1990}])]
    await say(service, learner, "I was born on 3 March 1990")
    await learner.stop()
    async with db.session() as session:
        user_id = await session.scalar(select(User.id))
        assert user_id is not None
        preferences = await UserRepository(session).preferences(user_id)
    assert (preferences.birthday_month, preferences.birthday_day, preferences.birth_year) == (3, 3, 1990)


def section(prompt: str, title: str) -> str | None:
    """The text of the prompt's ``## title`` section, None if it has none."""
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", prompt, re.MULTILINE | re.DOTALL)
    return None if found is None else found.group(1).strip()


async def guild_state(db: Database) -> list[tuple[Any, ...]]:
    """Hearth's own state in guilds: moods and opinions, every column that matters."""
    async with db.session() as session:
        moods = await session.execute(
            select(BotState.guild_id, BotState.mood_valence, BotState.mood_arousal, BotState.mood_updated_at)
            .where(BotState.guild_id.is_not(None))
            .order_by(BotState.id)
        )
        opinions = await session.execute(
            select(BotOpinion.guild_id, BotOpinion.topic, BotOpinion.sentiment, BotOpinion.discussion_count)
            .where(BotOpinion.guild_id.is_not(None))
            .order_by(BotOpinion.id)
        )
        return [tuple(row) for row in [*moods.all(), *opinions.all()]]


async def test_what_hearth_feels_and_thinks_in_one_dm_stays_in_that_dm(db: Database, llm: FakeLLM) -> None:
    """Ana's DM shapes Hearth's mood and opinions in Ana's DM only: never in Ben's DM, nor in a guild."""
    model = ScriptedModel(llm)
    service, learner = await setup(db, llm)
    learner.start()
    cheerful = extraction(topics=[{"name": "bouldering", "sentiment": 0.9}], sentiment=0.8, intensity=0.6)
    grim = extraction(topics=[{"name": "tax audits", "sentiment": -0.9}], sentiment=-0.9, intensity=1.0)
    model.answers = [cheerful] * 3
    for _ in range(3):  # an opinion is voiced once formed: three discussions
        await say(service, learner, "bouldering is the best", guild=901, mention=True)
    in_guilds = await guild_state(db)
    model.answers = [grim] * 3
    for _ in range(3):
        await say(service, learner, "my tax audits are ruining everything", channel=501)
    await say(service, learner, "tax audits, again", channel=501)
    ana_dm = system_prompt(llm)
    await say(service, learner, "what do you think of tax audits?", user=12, name="ben", channel=502)
    ben_dm = system_prompt(llm)
    assert await guild_state(db) == in_guilds, "DM talk changed a guild's mood or opinions"
    await say(service, learner, "bouldering or tax audits?", guild=901, mention=True, user=12, name="ben")
    in_guild = system_prompt(llm)
    await learner.stop()

    assert section(ana_dm, "Your opinions on what is being discussed") == "You dislike tax audits."
    assert section(ana_dm, "Your mood") is not None
    assert section(ben_dm, "Your opinions on what is being discussed") is None, "Ana's DM topic reached Ben's DM"
    assert section(ben_dm, "Your mood") is None, "the mood Ana's DM left reached Ben's DM"
    assert section(in_guild, "Your opinions on what is being discussed") == "You love bouldering."
    async with db.session() as session:
        moods = await session.scalar(select(func.count()).select_from(BotState))
    assert moods == 3  # the guild's, Ana's DM's, Ben's DM's


async def test_a_batch_longer_than_the_models_window_is_learned_from_its_newest_lines(
    db: Database, llm: FakeLLM
) -> None:
    model = ScriptedModel(llm)
    service, learner = await setup(db, llm, batch_messages=100)  # learned by hand below
    for day in range(12):
        text = f"day {day} of the trip: " + "we walked along the canal, looked at boats and ate far too much. " * 5
        await service.handle(message(text, at=NOW), RecordingReply())
    await service.handle(message("by the way, I work as a nurse", at=NOW), RecordingReply())
    conversation = (await _conversations(db))[0]
    # The instructions, a transcript of 1,500 tokens and 800 answer tokens do not fit in 2,048.
    llm.context_windows["fake-model"] = 2048

    model.answers = [extraction(facts=[fact("works as a nurse", "work")])]
    outcome = await learner.learn(conversation)

    assert (outcome.status, outcome.facts_added) == ("learned", 1)
    assert "I work as a nurse" in model.learning_prompts[-1] and "day 0 of the trip" not in model.learning_prompts[-1]
    assert (await learner.learn(conversation)).status == "nothing"
    async with db.session() as session:
        assert [f.fact_content for f in (await session.scalars(select(UserFact))).all()] == ["works as a nurse"]


async def test_two_batches_in_one_guild_at_once_both_nudge_its_mood(pg: Database, llm: FakeLLM) -> None:
    """Two learning workers (or two processes) learn from two channels of one guild at the same moment: each
    batch's nudge to Hearth's mood there counts (and each discussion of a topic); neither overwrites the other."""
    service, _ = await setup(pg, llm, batch_messages=100)
    for user, name, channel in ((11, "ana", 501), (12, "ben", 502)):
        said = message("bouldering is the best", user=user, name=name, channel=channel, guild=901, mention=True, at=NOW)
        await service.handle(said, RecordingReply())
    read = extraction(topics=[{"name": "bouldering", "sentiment": 0.9}], sentiment=0.9, intensity=1.0)("")
    llm.default = lambda body: Reply(read if "response_format" in body else "ok")
    async with pg.session() as session:
        guild_id = await session.scalar(select(Guild.id))
        assert guild_id is not None
        await MoodRepository(session).save(StatePlace(guild_id=guild_id), Mood(-0.5, -0.5), at=NOW)
    baseline = moods.baseline_of((await PersonaService(pg).for_guild(guild_id)).config)
    first, second = (await setup(pg, llm))[1], (await setup(pg, llm))[1]

    async with pg.session() as holding:  # the guild's mood held a moment, so both batches meet there
        await holding.execute(select(BotState.id).with_for_update())
        conversations = await _conversations(pg)
        batches = asyncio.gather(first.learn(conversations[0]), second.learn(conversations[1]))
        await waiting_for_row_locks(pg, connections=2)
    assert [outcome.status for outcome in await batches] == ["learned", "learned"]

    once = moods.nudged(Mood(-0.5, -0.5), sentiment=0.9, intensity=1.0, baseline=baseline)
    twice = moods.nudged(once, sentiment=0.9, intensity=1.0, baseline=baseline)
    async with pg.session() as session:
        assert await MoodRepository(session).get(StatePlace(guild_id=guild_id)) == (twice, NOW)
        assert list((await session.scalars(select(BotOpinion.discussion_count))).all()) == [2]


async def test_one_writer_learned_from_in_two_guilds_at_once_keeps_both_batches_in_their_style(
    pg: Database, llm: FakeLLM
) -> None:
    """Ana talks in two guilds, and their batches are learned at the same moment (two workers, or two processes):
    how she writes is learned from the messages of both, neither batch overwriting what the other folded in."""
    service, _ = await setup(pg, llm, batch_messages=100)
    for guild, channel in ((901, 501), (902, 502)):
        said = message("hey, how are you doing today?", channel=channel, guild=guild, mention=True, at=NOW)
        await service.handle(said, RecordingReply())
    read = extraction()("")
    llm.default = lambda body: Reply(read if "response_format" in body else "ok")
    async with pg.session() as session:
        ana = await session.scalar(select(User.id))
        assert ana is not None
        await StyleRepository(session).save(ana, CommunicationStyle(sample_count=4))
    first, second = (await setup(pg, llm))[1], (await setup(pg, llm))[1]

    async with pg.session() as holding:  # Ana's style held a moment, so both batches meet there
        await holding.execute(select(UserCommunicationStyle.id).with_for_update())
        conversations = await _conversations(pg)
        batches = asyncio.gather(first.learn(conversations[0]), second.learn(conversations[1]))
        await waiting_for_row_locks(pg, connections=2)
    assert [outcome.status for outcome in await batches] == ["learned", "learned"]

    async with pg.session() as session:
        assert list((await session.scalars(select(UserCommunicationStyle.samples_collected))).all()) == [6]
