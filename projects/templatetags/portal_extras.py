from django import template

register = template.Library()


@register.filter
def readable(value):
    """Lists (e.g. the names of changed settings) as "a, b" instead of
    Python's "['a', 'b']"."""
    if isinstance(value, (list, tuple)):
        return ", ".join(str(item) for item in value)
    return value
