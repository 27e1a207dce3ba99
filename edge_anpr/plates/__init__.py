"""Plates: plate-format rules per region, known-plate matching and tracking into events."""
