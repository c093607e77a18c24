"""A served process (web/serving.py) freezes what it built to start out of Python's garbage
collector, so a full collection does not stop its tills for ~40 ms."""

from __future__ import annotations

import gc
import threading
import time

from fastapi import FastAPI

from web import serving


def test_a_served_process_freezes_what_it_built_to_start_out_of_the_collector() -> None:
    built = [{"kept": [i]} for i in range(10_000)]  # what starting built: lives on
    server = serving.Server(serving.config(FastAPI(), "127.0.0.1", serving.free_port()),
                            freeze=True)
    thread = threading.Thread(target=server.run, daemon=True)
    try:
        thread.start()
        deadline = time.monotonic() + 10
        while gc.get_freeze_count() < len(built) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gc.get_freeze_count() >= len(built)
    finally:
        server.should_exit = True
        thread.join(10)
        gc.unfreeze()  # this test's process is no served process


def test_a_server_in_a_thread_of_a_test_or_the_demo_freezes_nothing() -> None:
    server = serving.Background(FastAPI())
    try:
        assert gc.get_freeze_count() == 0
    finally:
        server.stop()
