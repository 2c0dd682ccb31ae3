"""pynq drivers for the cimstack overlay: the same code on the board and in emulation."""
