"""A plain text progress bar (no tqdm dependency).

On a terminal the bar redraws in place (``\\r``) at most every
``REDRAW_SECONDS``; on a pipe or a file it writes one line when it closes, so
logs stay readable::

    epoch 3/20 [##########----------] 11/22 loss 0.4123 acc 0.871 lr 0.0905
"""

import sys
import time

BAR_WIDTH = 20
REDRAW_SECONDS = 0.2
FILLED = "#"
EMPTY = "-"


def format_values(values):
    """Format ``{name: number}`` as ``"name 0.1234 ..."`` (floats with 4 significant digits)."""
    parts = []
    for name, value in values.items():
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        parts.append(f"{name} {text}")
    return " ".join(parts)


class ProgressBar:
    """Count steps towards ``total`` and show them on ``stream``.

    Parameters
    ----------
    total : int
        Steps in the bar.
    description : str
        Text before the bar.
    stream : file, optional
        Where to write; ``sys.stderr`` by default.
    done : int
        Steps already done (a resumed epoch).
    """

    def __init__(self, total, description="", stream=None, done=0):
        self.total = max(1, total)
        self.description = description
        self.stream = sys.stderr if stream is None else stream
        self.done = done
        self.values = {}
        isatty = getattr(self.stream, "isatty", None)
        self.interactive = bool(isatty and isatty())
        self._last_draw = 0.0

    def render(self):
        """Return the bar's current text."""
        filled = BAR_WIDTH * min(self.done, self.total) // self.total
        bar = FILLED * filled + EMPTY * (BAR_WIDTH - filled)
        text = f"{self.description} [{bar}] {self.done}/{self.total}"
        values = format_values(self.values)
        return f"{text} {values}" if values else text

    def update(self, count=1, **values):
        """Advance by ``count`` steps and set the shown values."""
        self.done += count
        self.values.update(values)
        now = time.monotonic()
        if self.interactive and now - self._last_draw >= REDRAW_SECONDS:
            self._last_draw = now
            self.stream.write("\r" + self.render())
            self.stream.flush()

    def close(self, **values):
        """Set the final values and finish the line."""
        self.values.update(values)
        prefix = "\r" if self.interactive else ""
        self.stream.write(prefix + self.render() + "\n")
        self.stream.flush()
