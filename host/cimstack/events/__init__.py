"""Event data: tonic-style structured arrays, event-camera files (N-MNIST, AEDAT 3.1
and 4, EVT 2.0 and 3.0, DAT, ES), binning, cropping and downsampling, the wire format
of the snn kernel, and a simulated event camera with a built-in data set."""

from .core import (EVENT_DTYPE, FIT_MODES, EventFormatError, as_events, bin_events,
                   empty_events, fit_sensor, frames_to_events, make_events)
from .formats import (DVS128_SENSOR, NMNIST_SENSOR, encode_aedat, encode_nmnist, read_aedat,
                      read_gesture_labels, read_nmnist, write_nmnist)
from .wire import frames_to_packets, pack_stream, packets_to_frames, unpack_stream
from .camera import CameraConfig, simulate
from .datasets import EventSet, event_digits, load_dvs_gesture, load_event_data, load_nmnist
from .files import FORMATS, EventFile, detect_format, read_event_file, write_event_file

__all__ = ["EVENT_DTYPE", "FIT_MODES", "EventFormatError", "as_events", "bin_events",
           "empty_events", "fit_sensor", "frames_to_events", "make_events", "DVS128_SENSOR",
           "NMNIST_SENSOR", "encode_aedat", "encode_nmnist", "read_aedat", "read_gesture_labels",
           "read_nmnist", "write_nmnist", "frames_to_packets", "pack_stream",
           "packets_to_frames", "unpack_stream", "CameraConfig", "simulate", "EventSet",
           "event_digits", "load_dvs_gesture", "load_event_data", "load_nmnist",
           "FORMATS", "EventFile", "detect_format", "read_event_file", "write_event_file"]
