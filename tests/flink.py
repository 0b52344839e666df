"""What the MiniCluster tests share: records whose first field is their event time, fed through `from_collection`."""

from pyflink.common.watermark_strategy import TimestampAssigner


class RecordTime(TimestampAssigner):
    def extract_timestamp(self, value, record_timestamp):
        return value[0]
