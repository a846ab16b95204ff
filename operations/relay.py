"""The relay: re-sends what the database says is owed and Redis does not hold.

It runs inside every worker dyno as a Dramatiq fork process
(`rundramatiq --fork-function operations.relay:relay_forever`), so it needs no dyno of its own; two
relays at once never send twice (each send is a compare-and-set in the database).
`manage.py requeue_stuck` does one pass of the photo side by hand.
"""

from __future__ import annotations

import logging
import random
import time

logger = logging.getLogger("operations.relay")


def relay_once() -> tuple[int, int]:
    """One pass: (photos re-sent, inventory syncs re-sent)."""
    from infra.broker import broker_redis, broker_sweep
    from inventory.relay import inventory_relay
    from photos.services.relay import photos_relay, photos_stuck

    client = broker_redis()
    broker_sweep(client)
    photos_sent, _ = photos_relay(photos=photos_stuck(client=client))
    syncs_sent = inventory_relay(client=client)
    return photos_sent, syncs_sent


def relay_forever() -> int:
    """Loop until SIGTERM (Dramatiq's fork process turns it into SystemExit)."""
    import django_dramatiq.setup  # noqa: F401  (django.setup(): settings, apps, the broker)
    from django.conf import settings
    from django.db import close_old_connections

    interval = settings.RELAY_INTERVAL_S
    logger.info("relay started: a pass every %s s", interval)
    while True:
        try:
            photos_sent, syncs_sent = relay_once()
            if photos_sent or syncs_sent:
                logger.warning(
                    "relay re-sent %d photo message(s) and %d inventory sync(s)",
                    photos_sent,
                    syncs_sent,
                )
        except Exception:  # Redis or the database down: say so, try again next pass
            logger.exception("relay pass failed")
        finally:
            close_old_connections()
        time.sleep(interval * random.uniform(0.8, 1.2))
