"""Publish: plate events to MQTT through a durable SQLite outbox."""
