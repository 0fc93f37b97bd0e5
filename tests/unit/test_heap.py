"""Freezing start-up's heap: survivors leave the collector's passes, start-up's garbage does not survive."""

import gc
import weakref
from collections.abc import Iterator

import pytest

from bot.heap import freeze_start_up_heap


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def unfrozen_afterwards() -> Iterator[None]:
    yield
    gc.unfreeze()  # the test session's own objects go back to the collector


@pytest.mark.usefixtures("unfrozen_afterwards")
def test_survivors_are_skipped_by_later_collections_and_garbage_is_freed_first() -> None:
    kept = [Node() for _ in range(1000)]
    dropped_a, dropped_b = Node(), Node()
    dropped_a.other, dropped_b.other = dropped_b, dropped_a  # a cycle: only the collector can free it
    dropped = weakref.ref(dropped_a)
    del dropped_a, dropped_b

    frozen = freeze_start_up_heap()

    assert dropped() is None, "start-up's unreachable cycles are collected, not frozen for the process's life"
    assert frozen == gc.get_freeze_count() >= len(kept)
    tracked = {id(obj) for obj in gc.get_objects()}  # every generation the collector still walks
    assert not any(id(node) in tracked for node in kept)
    made_later = Node()
    assert gc.is_tracked(made_later) and id(made_later) in {id(obj) for obj in gc.get_objects()}
