"""``{% recorder_pool project %}``: the recorder slots in use, the length of
the queue, and the project's own live recordings and streams (used on the
Rooms page, which belongs to the projects app and must not import this one)."""

from django import template

from recordings.recorder_status import pool_status

register = template.Library()


@register.inclusion_tag("recordings/_recorder_pool.html")
def recorder_pool(project):
    return {"pool": pool_status(project)}
