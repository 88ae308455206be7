"""Measurements, one job per module: parameters, memory, FLOPs, inference speed, size on disk, provenance."""
