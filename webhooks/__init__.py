"""A project's webhook: its endpoint, the outbox of messages and their
attempts, Standard Webhooks signing and sending, the settings page and the
``webhook`` command. Recordings and delivery queue events here
(``webhooks.outbox.queue_event``)."""
