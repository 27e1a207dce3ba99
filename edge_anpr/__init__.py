"""edge-anpr: licence plate recognition appliance (UDP frames in, MQTT plate events out)."""

__version__ = "0.1.0"
