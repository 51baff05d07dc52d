"""Every change of state of delivery, one module per noun: destinations
(their settings, trusted keys, deletion) and deliveries (redeliver, retry,
past sessions). A kind's own actions (a Google account, an SSH key pair)
live in its folder, ``delivery/destinations/<kind>/actions.py``.

Each ``do_<verb>_<noun>()`` is atomic, takes plain values (forms stay in the
views and the command), takes the acting person as the keyword
``acting_user`` with no default (the command says ``acting_user=None`` out
loud), writes an audit row for a person's action and makes network calls
only after commit.
"""
