"""Keep the garbage collector's full passes short once start-up is done.

Start-up leaves hundreds of thousands of objects that live as long as the process: SQLAlchemy's mappers,
discord.py's, openai's and the embedding runtime's modules. CPython's full collection walks every one of them,
with the event loop stopped: measured when the model ran on torch (about 640,000 objects), each took
250–500 ms and came every 15 seconds or so under load, which held up every reply in flight. Frozen, they are skipped,
and a full pass only walks what was made since (well under a millisecond at the same load).
"""

import gc


def freeze_start_up_heap() -> int:
    """Collect start-up's garbage, then move every surviving object out of future collections.

    Call it once, after start-up (database, migrations, models) and before serving. Objects frozen here are
    never freed even if they later become unreachable cycles, so only long-lived start-up state should
    exist at this point. Returns how many objects were frozen.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
