"""Events on the wire: the AXI-Stream format of the snn kernel.

32-bit event words, two per 64-bit stream beat (low half first, little endian):

- ``1 << 31 | t``  timestep marker (t in 0 .. 2^31 - 2), the first word of a packet;
- ``a``            neuron address (bit 31 clear): flat index (c, y, x) -> (c*H + y)*W + x
                   of the layer's input map, ascending within a packet;
- ``0xFFFFFFFF``   pad word, fills the second half of a packet's last beat.

One packet per timestep (also when it has no events: marker only), TLAST on its last
beat. The kernel answers each input packet with one output packet in the same format
(the layer's output spikes of that timestep); a run of samples with ``v_out`` adds one
membrane packet per sample (marked one past its last timestep, its words the membranes'
fields, docs/macros.md). Several packets sent back to back as one
transfer (the kernel's RUN mode) carry TLAST on the transfer's last beat only; their
boundaries are the beats that open with a marker (:func:`packet_ends`).
"""

from __future__ import annotations

import numpy as np

from .core import EventFormatError

MARKER = 1 << 31
PAD = 0xFFFFFFFF
MAX_T = (1 << 31) - 2
MAX_ADDR = (1 << 31) - 1


def packet_words32(t: int, addresses) -> np.ndarray:
    """The 32-bit words of one timestep packet, padded to a whole 64-bit beat."""
    if not 0 <= int(t) <= MAX_T:
        raise ValueError(f"timestep {t} out of range 0..{MAX_T}")
    a = np.unique(np.asarray(addresses, np.int64))
    if a.size and (a[0] < 0 or a[-1] > MAX_ADDR):
        raise ValueError(f"addresses must be in 0..{MAX_ADDR}")
    n = 1 + a.size
    words = np.full(n + (n & 1), PAD, np.uint32)
    words[0] = MARKER | int(t)
    words[1:n] = a
    return words


def packet_beats(n_events: int) -> int:
    """64-bit beats of a packet with ``n_events`` distinct addresses."""
    return (n_events + 2) // 2


def pack_stream(packets) -> tuple[np.ndarray, np.ndarray]:
    """``[(t, addresses), ...]`` -> (uint64 beats, TLAST flags), TLAST per packet."""
    beats, last = [], []
    for t, addr in packets:
        w = packet_words32(t, addr).view("<u8")
        flags = np.zeros(w.size, bool)
        flags[-1] = True
        beats.append(w)
        last.append(flags)
    if not beats:
        return np.zeros(0, np.uint64), np.zeros(0, bool)
    return np.concatenate(beats).astype(np.uint64), np.concatenate(last)


def packet_opens(beats) -> np.ndarray:
    """Per beat of packets sent back to back: whether it opens a packet (a marker in its
    low half; packets fill whole beats, so a marker is always the low half of one)."""
    low = np.ascontiguousarray(beats, dtype="<u8").view("<u4")[0::2]
    return ((low & np.uint32(MARKER)) != 0) & (low != np.uint32(PAD))


def packet_ends(beats) -> np.ndarray:
    """TLAST flags of whole packets sent back to back: a beat ends a packet where the
    next beat opens one (:func:`packet_opens`), and the last beat ends the last packet."""
    opens = packet_opens(beats)
    last = np.zeros(opens.size, bool)
    last[:-1] = opens[1:]
    if opens.size:
        last[-1] = True
    return last


def unpack_stream(beats, last=None) -> list[tuple[int, np.ndarray]]:
    """(beats, TLAST) -> ``[(t, addresses int64), ...]``; a packet missing its marker,
    a marker inside a packet, or a stream not ending on TLAST is an error."""
    words = np.ascontiguousarray(beats, dtype="<u8").view("<u4")
    if last is None:
        last = np.zeros(len(beats), bool)
        if len(beats):
            last[-1] = True
    last = np.asarray(last, bool)
    if last.size != len(beats):
        raise EventFormatError(f"{len(beats)} beats but {last.size} TLAST flags")
    if len(beats) and not last[-1]:
        raise EventFormatError("event stream does not end with TLAST: last packet is cut")
    ends = np.nonzero(last)[0]
    out, start = [], 0
    for end in ends:
        w = words[2 * start:2 * (end + 1)]
        if not w[0] & MARKER or w[0] == PAD:
            raise EventFormatError(f"packet at beat {start} does not start with a timestep "
                                   f"marker (word 0x{int(w[0]):08X})")
        body = w[1:][w[1:] != PAD]
        if np.any(body & MARKER):
            raise EventFormatError(f"packet at beat {start} holds a second marker: "
                                   "TLAST missing between two timesteps")
        out.append((int(w[0] & ~np.uint32(MARKER)), body.astype(np.int64)))
        start = end + 1
    return out


def frames_to_beats(frames, steps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Binary maps ``[T, C, H, W]`` (or ``[T, N]``) -> (uint64 beats of the T timestep
    packets back to back, beats of each packet): the beats :func:`pack_stream` makes of
    :func:`frames_to_packets`, built in one pass over all timesteps. ``steps``: the
    frames are samples of that many timesteps each (as :func:`events_to_beats`)."""
    f = np.asarray(frames, bool).reshape(len(frames), -1)
    if f.shape[1] - 1 > MAX_ADDR:
        raise ValueError(f"{f.shape[1]} neurons: at most {MAX_ADDR + 1} addresses fit the "
                         "wire format")
    flat = np.flatnonzero(f)                     # by timestep, addresses ascending
    t_of = flat // max(1, f.shape[1])            # (a 2-D np.nonzero takes 5x as long)
    return events_to_beats(t_of, flat - t_of * f.shape[1], len(f), steps)


def events_to_beats(frame_of, addr, n_frames: int,
                    steps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Events (frame, address), by frame and with ascending addresses within a frame ->
    (uint64 beats of one packet per frame back to back, beats of each packet). A frame's
    packet is marked with its timestep: the frame, or with ``steps`` the frame modulo
    ``steps`` (frames of several samples of ``steps`` timesteps each)."""
    frame_of = np.asarray(frame_of, np.int64)
    steps = n_frames if steps is None else steps
    if min(steps, n_frames) - 1 > MAX_T:
        raise ValueError(f"{min(steps, n_frames)} timesteps: at most {MAX_T + 1} fit the "
                         "wire format")
    counts = np.bincount(frame_of, minlength=n_frames)
    beats = (counts + 2) // 2                    # marker + events, padded to whole beats
    start = np.zeros(n_frames + 1, np.int64)     # first word of each packet
    np.cumsum(2 * beats, out=start[1:])
    words = np.full(start[-1], PAD, np.uint32)
    words[start[:-1]] = MARKER | (np.arange(n_frames) % max(1, steps)).astype(np.uint32)
    first_event = np.cumsum(counts) - counts     # index in addr of each packet's first event
    words[start[frame_of] + 1 + np.arange(frame_of.size) - first_event[frame_of]] = addr
    return words.view("<u8"), beats


def unpack_events(beats) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Packets sent back to back (boundaries at the markers, as :func:`packet_ends`) ->
    (the packets' timestep markers, the packet of each event (0, 1, ...), its address),
    in one pass;
    a stream not opened by a marker, or a marker in the high half of a beat (TLAST
    missing between two timesteps), is an error, as in :func:`unpack_stream`."""
    words = np.ascontiguousarray(beats, dtype="<u8").view("<u4")
    if not words.size:
        return (np.zeros(0, np.int64),) * 3
    low, high = words[0::2], words[1::2]
    is_marker = ((words & np.uint32(MARKER)) != 0) & (words != np.uint32(PAD))
    opens = is_marker[0::2]
    if not opens[0]:
        raise EventFormatError("packet at beat 0 does not start with a timestep marker "
                               f"(word 0x{int(low[0]):08X})")
    if is_marker[1::2].any():
        beat = int(np.flatnonzero(is_marker[1::2])[0])
        raise EventFormatError(f"packet ending at beat {beat} holds a second marker "
                               f"(word 0x{int(high[beat]):08X}): TLAST missing between "
                               "two timesteps")
    marks = (low[opens] & np.uint32(~MARKER & 0xFFFFFFFF)).astype(np.int64)
    packet_of_word = np.repeat(np.cumsum(opens) - 1, 2)
    event = ~is_marker & (words != np.uint32(PAD))
    return marks, packet_of_word[event], words[event].astype(np.int64)


def frames_to_packets(frames: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Binary maps ``[T, C, H, W]`` (or ``[T, N]``) -> one packet of flat addresses per
    timestep."""
    f = np.asarray(frames).reshape(len(frames), -1)
    return [(t, np.flatnonzero(f[t])) for t in range(len(f))]


def packets_to_frames(packets, n_steps: int, n_neurons: int) -> np.ndarray:
    """Packets -> bool ``[T, n_neurons]``."""
    out = np.zeros((n_steps, n_neurons), bool)
    for t, a in packets:
        if t >= n_steps or (a.size and a.max() >= n_neurons):
            raise EventFormatError(f"packet t={t} outside {n_steps} steps x {n_neurons} "
                                   "neurons")
        out[t, a] = True
    return out
