"""The schedlab bus: msgpack messages over ZeroMQ, defined once and imported by every process.

- ``codec``: the Message base, ``@message`` registry, envelopes, Status codes, BusError.
- ``server``/``client``: ROUTER dispatcher, DEALER client with timeouts, PUB/SUB helpers.
- ``vmm``, ``collector``, ``monitor``: one contract module per channel.
- ``topics``: published topic names.
"""
