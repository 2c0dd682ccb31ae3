"""Event data: tonic-style structured arrays, real file formats, binning, the wire
format of the snn kernel, and a simulated event camera with a built-in data set."""

from .core import (EVENT_DTYPE, EventFormatError, as_events, bin_events, empty_events,
                   frames_to_events, make_events)
from .formats import (DVS128_SENSOR, NMNIST_SENSOR, encode_aedat, encode_nmnist, read_aedat,
                      read_gesture_labels, read_nmnist, write_nmnist)
from .wire import frames_to_packets, pack_stream, packets_to_frames, unpack_stream
from .camera import CameraConfig, simulate
from .datasets import EventSet, event_digits, load_dvs_gesture, load_event_data, load_nmnist

__all__ = ["EVENT_DTYPE", "EventFormatError", "as_events", "bin_events", "empty_events",
           "frames_to_events", "make_events", "DVS128_SENSOR", "NMNIST_SENSOR",
           "encode_aedat", "encode_nmnist", "read_aedat", "read_gesture_labels",
           "read_nmnist", "write_nmnist", "frames_to_packets", "pack_stream",
           "packets_to_frames", "unpack_stream", "CameraConfig", "simulate", "EventSet",
           "event_digits", "load_dvs_gesture", "load_event_data", "load_nmnist"]
