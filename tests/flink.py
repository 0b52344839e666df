"""What the MiniCluster tests share: records whose first field is their event time, fed through `from_collection`."""

from pyflink.common.watermark_strategy import TimestampAssigner


class RecordTime(TimestampAssigner):
    def extract_timestamp(self, value, record_timestamp):
        return value[0]


class ValueState:
    """A Flink ValueState outside Flink: for driving a keyed function's process_element / on_timer directly."""

    def __init__(self):
        self._value = None

    def value(self):
        return self._value

    def update(self, value):
        self._value = value
