"""The broker's consumer against the real Redis: with every slot taken, an ack frees one at once."""

from __future__ import annotations

import threading
from typing import Any

import dramatiq
import pytest

from infra.broker import RedisBroker

QUEUE = "test-consumer"


def _message(n: int) -> dramatiq.Message[Any]:
    return dramatiq.Message(queue_name=QUEUE, actor_name="noop", args=(n,), kwargs={}, options={})


@pytest.fixture
def broker(redis_client: Any) -> RedisBroker:
    broker = dramatiq.get_broker()
    assert isinstance(broker, RedisBroker)  # what settings.DRAMATIQ_BROKER names
    broker.declare_queue(QUEUE)
    return broker


def test_consumer_at_full_prefetch_fetches_the_next_message_as_soon_as_one_is_acked(
    broker: RedisBroker,
) -> None:
    for n in range(2):
        broker.enqueue(_message(n))
    # A 30 s idle timeout, and a consumer that has already missed many times (as after a long
    # busy spell): upstream, a consumer at full prefetch sleeps like an idle one, here
    # 10-20 s, before it looks again, whatever the worker threads did meanwhile.
    consumer: Any = broker.consume(QUEUE, prefetch=1, timeout=30_000)
    first = next(consumer)
    assert first.args == (0,)
    consumer.misses = 12

    returned: list[Any] = []
    waiting = threading.Thread(target=lambda: returned.append(next(consumer)))
    waiting.start()
    waiting.join(0.2)
    assert waiting.is_alive()  # nothing to take while the one message it may hold is in flight

    consumer.ack(first)  # a worker thread finishing, from its own thread
    waiting.join(5)
    assert not waiting.is_alive(), "the consumer slept through the ack"
    assert returned == [None]  # the consumer thread does its chores, then asks again
    second = next(consumer)
    assert second.args == (1,)
    consumer.ack(second)
    consumer.close()


def test_consumer_with_an_empty_queue_still_returns_after_its_backoff(broker: RedisBroker) -> None:
    consumer: Any = broker.consume(QUEUE, prefetch=4, timeout=50)
    assert next(consumer) is None
    broker.enqueue(_message(7))
    message = next(consumer)
    assert message.args == (7,)
    consumer.ack(message)
    consumer.close()


def test_broker_and_throttle_speak_resp2_to_redis(broker: RedisBroker) -> None:
    # redis-py 8's RESP3 handshake for maintenance notifications crashed requests under load
    # (infra/broker.py): the server must see RESP2 connections from both clients.
    from django.conf import settings

    from infra.throttling import _redis_for

    for client in (broker.client, _redis_for(settings.THROTTLE_CACHE)):
        assert client.client_info()["resp"] == "2"
