"""Known anomalies from tracks and the camera's zones, one rule per module.

Adding a rule: a module with a `Rule` subclass (its `kind`, `Params` and hooks), its test, and one entry below.
The order of `RULES` is the order the engine evaluates them in, per track and then per frame; the picture (bad-video)
rules' per-frame hooks run before the tracks, since they may suspend the per-track rules, and the zone rules (queue,
debris) after them, since they may explain the per-track rules' events.
"""

from jobs.anomaly.rules.base import Rule, RuleEngine, RuleParams, RuleSettingsError, RuleState
from jobs.anomaly.rules.blur import Blur
from jobs.anomaly.rules.camera_moved import CameraMoved
from jobs.anomaly.rules.crowding import Crowding
from jobs.anomaly.rules.debris import Debris
from jobs.anomaly.rules.frozen import Frozen
from jobs.anomaly.rules.loitering import Loitering
from jobs.anomaly.rules.low_contrast import LowContrast
from jobs.anomaly.rules.object_left import ObjectLeft
from jobs.anomaly.rules.pedestrian import Pedestrian
from jobs.anomaly.rules.queue import Queue
from jobs.anomaly.rules.slow_vehicle import SlowVehicle
from jobs.anomaly.rules.stopped_vehicle import StoppedVehicle
from jobs.anomaly.rules.wrong_way import WrongWay

RULES: list[Rule] = [StoppedVehicle(), WrongWay(), SlowVehicle(), Pedestrian(), Loitering(), ObjectLeft(), Crowding(),
                     Queue(), Debris(), Frozen(), CameraMoved(), Blur(), LowContrast()]

__all__ = ["RULES", "Rule", "RuleEngine", "RuleParams", "RuleSettingsError", "RuleState"]
