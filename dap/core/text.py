"""Messages for a person: an exception said in one line."""


def one_line(exc: BaseException) -> str:
    """``exc``'s message on one line (whitespace collapsed), or its type's name when it has none."""
    return " ".join(str(exc).split()) or type(exc).__name__
