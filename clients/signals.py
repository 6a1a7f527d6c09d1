"""What clients announce; higher layers (sessions) subscribe, clients imports none of them.

``deactivated_in_bulk`` is sent by ``ClientQuerySet.update`` and ``bulk_update`` (Django sends
no ``post_save`` for them) inside their transaction, with ``clients``: the clients that were
active and are not any more. ``sessions.flows.cascade`` ends their families and tokens as it
does for a client deactivated by ``save()``, so relying services are told either way.
"""

from __future__ import annotations

from django.dispatch import Signal

#: Clients deactivated by a bulk write: ``clients`` (a list of ``Client``).
deactivated_in_bulk = Signal()
