"""Frozen encoder features: encoders, image preprocessing, pooling and the HDF5 shard store."""
