"""The request log's AWS time: calls in flight at the same time count once."""

from __future__ import annotations

import threading
import time

from app.aws.timing import AwsTime, aws_time, in_background


def test_calls_one_after_the_other_add_up():
    spent = AwsTime()
    for _ in range(2):
        spent.started()
        time.sleep(0.05)
        spent.ended()
    assert spent.calls == 2
    assert 0.1 <= spent.seconds < 0.15


def test_overlapping_calls_count_their_wall_time_once():
    spent = AwsTime()
    barrier = threading.Barrier(3)

    def call() -> None:
        barrier.wait()
        spent.started()
        time.sleep(0.1)
        spent.ended()

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert spent.calls == 3
    # Three calls of 0.1 s side by side: about 0.1 s of waiting, not 0.3 s.
    assert 0.09 <= spent.seconds < 0.2


def test_a_background_read_is_counted_in_the_request_that_started_it():
    spent = AwsTime()
    token = aws_time.set(spent)
    try:
        seen = in_background(aws_time.get).result(timeout=5)
    finally:
        aws_time.reset(token)
    assert seen is spent
    assert in_background(aws_time.get).result(timeout=5) is None  # outside any request
