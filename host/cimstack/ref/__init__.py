"""Bit-accurate NumPy golden models of the macros and the network executor."""
