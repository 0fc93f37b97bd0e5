"""The owner's status: one snapshot of the database, the background queues, maintenance mode and the jobs."""

from bot.db.engine import Database
from tests.fakes.llm_server import FakeLLM, Reply
from tests.support.bot import container_on
from tests.support.chat import RecordingReply, message


async def test_the_snapshot_counts_memories_waiting_for_a_vector_and_shows_maintenance_mode(
    db: Database, llm: FakeLLM
) -> None:
    # Not started: the embedding worker leaves the turn's memories without a vector, the jobs are stopped.
    async with container_on(db, llm) as container:
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
