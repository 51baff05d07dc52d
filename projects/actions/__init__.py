"""Every change of state of projects, one module per noun.

Each ``do_<verb>_<noun>()`` is atomic, takes plain values (forms stay in the
views), takes the acting person as the keyword ``acting_user`` with no
default (the APIs, which act for the app rather than a person, say
``acting_user=None`` out loud), writes an audit row for a person's action and
makes network calls only after commit.
"""
