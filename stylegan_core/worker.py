"""Long work in a thread, its progress streamed to the caller: the one pattern behind every
operation with previews and a Stop button (inversion, sketch to face, video)."""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterator


class _Finished:
    def __init__(self, result: Any = None, error: BaseException | None = None):
        self.result, self.error = result, error


def stream_from_worker(task: Callable[[Callable[[Any], None]], Any], cancel: threading.Event,
                       name: str) -> Iterator[Any]:
    """Run `task(emit)` in a thread and yield everything it emits; the generator's return value is
    the task's result, and the task's exception is raised here. Closing the generator (the person
    pressed Stop, or the browser went away) sets `cancel`, which the task checks at its next step."""
    updates: "queue.Queue" = queue.Queue()

    def work() -> None:
        try:
            updates.put(_Finished(result=task(updates.put)))
        except BaseException as error:  # noqa: BLE001 - handed to the consumer thread
            updates.put(_Finished(error=error))

    threading.Thread(target=work, name=name, daemon=True).start()
    try:
        while True:
            item = updates.get()
            if not isinstance(item, _Finished):
                yield item
                continue
            if item.error is not None:
                raise item.error
            return item.result
    finally:
        cancel.set()  # a no-op after success; stops the worker when the consumer goes away
