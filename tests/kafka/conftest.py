"""Fixtures of tests/kafka: the real-broker fixtures of conftest_kafka.py."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest_kafka import kafka_broker, kafka_factory, kafka_topic  # noqa: E402,F401
