"""How the trials of a run are shared among its tasks: by each task's share of the model's time.

Every task's hand plan is measured first, several tasks to a round. Then each round goes to the task
with the largest ``calls x best time x gain``: its share of the model's
kernel time, scaled by ``gain``, which halves after a round that improved the
task by less than ``MIN_GAIN`` and goes back to 1 after one that did. It is
MetaSchedule's gradient task scheduler's idea (spend where the model's
latency drops fastest) on our measured times.
"""

MIN_GAIN = 0.01  # a round must cut a task's best time by 1% to count as progress
GAIN_DECAY = 0.5


class TrialAllocator:
    """Picks the task of each round.

    Parameters
    ----------
    searches : dict
        ``{key: PlanSearch}``.
    calls : dict
        ``{key: call sites of the task in the model}``.
    """

    def __init__(self, searches, calls):
        self.searches = searches
        self.calls = calls
        self.gain = dict.fromkeys(searches, 1.0)

    def pick(self):
        """The key of the task to measure next, or None when every space is exhausted."""
        live = [key for key, search in self.searches.items() if not search.exhausted]
        for key in live:
            if search_needs_hand(self.searches[key]):
                return key
        if not live:
            return None
        return max(
            live,
            key=lambda key: (
                self.calls[key] * (self.searches[key].best_secs or 0.0) * self.gain[key]
            ),
        )

    def hands_left(self):
        """Whether some task's hand plan is still to be measured."""
        return any(search_needs_hand(search) for search in self.searches.values())

    def next_round(self, count, model, contexts):
        """Up to ``count`` ``(task key, candidate)`` pairs to measure, or None when every space is exhausted.

        While some hand plans are unmeasured, the round is those (one per
        task); then it is ``count`` candidates of the task :meth:`pick` chooses.
        """
        hands = [key for key, search in self.searches.items() if search_needs_hand(search)][:count]
        if hands:
            return [(key, self.searches[key].propose(1, model, contexts[key])[0]) for key in hands]
        key = self.pick()
        if key is None:
            return None
        return [
            (key, candidate)
            for candidate in self.searches[key].propose(count, model, contexts[key])
        ]

    def update(self, key, before, after):
        """Record a round of ``key`` that took its best time from ``before`` to ``after`` seconds."""
        improved = before is None or (after is not None and after < before * (1 - MIN_GAIN))
        self.gain[key] = 1.0 if improved else self.gain[key] * GAIN_DECAY

    def model_secs(self):
        """The model's kernel time at the best plans so far: sum of calls x best time."""
        return sum(
            self.calls[key] * (search.best_secs or 0.0) for key, search in self.searches.items()
        )


def search_needs_hand(search):
    """Whether the task's hand plan is still to be measured."""
    return search.task.default_plan.to_json() not in search.measured
