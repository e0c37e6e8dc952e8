"""The one exception type the pack raises for bad input: it names what was found and the fix."""


class SpacetimeError(ValueError):
    """Bad input or a setup problem the user can fix; the message says what was found, expected, and what to do."""
