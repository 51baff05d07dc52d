from django import template

from portal.sizes import human_size

register = template.Library()
register.filter("human_size", human_size)


@register.filter
def readable(value):
    """Lists (e.g. the names of changed settings) as "a, b" instead of
    Python's "['a', 'b']"."""
    if isinstance(value, (list, tuple)):
        return ", ".join(str(item) for item in value)
    return value
