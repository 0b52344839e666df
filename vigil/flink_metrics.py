"""User metrics of the PyFlink jobs' functions (no connector imports: the jobs' pipelines stay testable on
`from_collection`)."""

from __future__ import annotations


class JobMetrics:
    """User metrics of a PyFlink function, reported by Flink's metric reporters (the Prometheus reporter in a cluster,
    `VIGIL_FLINK_METRICS_PORT` locally) as vigil_<name> with the given labels."""

    def __init__(self, runtime_context):
        self.group = runtime_context.get_metrics_group().add_group("vigil")
        self.counters: dict[tuple, object] = {}

    def count(self, name: str, amount: int = 1, **labels: str) -> None:
        key = (name, *sorted(labels.items()))
        if key not in self.counters:
            group = self.group
            for label, value in sorted(labels.items()):
                group = group.add_group(label, str(value))
            self.counters[key] = group.counter(name)
        self.counters[key].inc(amount)
