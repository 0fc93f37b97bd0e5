"""The owner's status: one snapshot of the database, the background queues, maintenance mode and the jobs."""

from bot.container import Container
from bot.db.engine import Database
from tests.fakes.llm_server import FakeLLM, Reply
from tests.support.bot import bot_settings
from tests.support.chat import RecordingReply, chat_model, message
from tests.support.embedding import shared_embedder


async def test_the_snapshot_counts_memories_waiting_for_a_vector_and_shows_maintenance_mode(
    db: Database, llm: FakeLLM
) -> None:
    container = await Container.create(
        bot_settings(db, llm, learning_enabled=False),
        chat_model=chat_model(llm.base_url),
        embedder=await shared_embedder(),
    )
    try:  # not started: the embedding worker leaves the turn's memories without a vector, the jobs are stopped
        status = container.status
        before = await status.snapshot()
        assert (before.backend, before.embedding_backlog, before.maintenance) == (db.backend, 0, False)
        assert before.database_bytes > 0 and before.learner_backlog == 0
        assert before.jobs and set(before.jobs.values()) == {None}
        llm.script(Reply("Hi Ana!"))
        assert (await container.conversation.handle(message("hello"), RecordingReply())).status == "replied"
        await status.set_maintenance(True)
        after = await status.snapshot()
        assert after.embedding_backlog == 2, "the message's memory and the reply's"
        assert after.maintenance and container.conversation.resting
        assert await status.reembed() == 2, "what /owner memory reembed embeds: every memory without this model's"
        assert (await status.snapshot()).embedding_backlog == 0
    finally:
        await container.aclose()
