"""Single images on onnxruntime: a one-thread session, and a classifier graph fed uint8 pixels.

A small network's single image spends more time in the steps around its graph than in it: on
2 CPU cores LeNet-5's graph takes ~30 µs alone, waking onnxruntime's second intra-op thread
adds ~20 µs, and cnnkit's steps in Python (uint8 → normalised float, softmax) ~20 µs more.
``cnnkit.export.runtime.use_backend`` therefore offers single images a second session:

* on one intra-op thread (nothing to wake);
* for a classifier, of :func:`pixel_graph`: the bare network with the normalisation before it
  and the probabilities after it in the graph, so that ``LoadedModel.predict_proba`` hands
  the user's uint8 pixels to onnxruntime and gets the probabilities back, with no step of
  its own (a task run's one-thread session runs its usual graph).

It is kept only where :func:`single_image_session` measures it faster than the main session
on one image (LeNet-5 is; ResNet-18, the FCN and the detectors are not, and for networks over
``MAX_S`` per image no second session is even opened). ``SINGLE_IMAGE_SESSION = False`` turns
it off.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from cnnkit.export.onnx import onnx_session
from cnnkit.run.outputs import LOG_PROBS, LOGITS, PROBS

logger = logging.getLogger(__name__)

#: use_backend opens a one-thread session for single images and keeps it when measured
#: faster (False: never).
SINGLE_IMAGE_SESSION = True
GAIN = 0.9  # keep the one-thread session when its median is below 0.9x the main session's
BUDGET_S = 0.2  # the measurement's time (at least 5 pairs of runs)
MAX_S = 0.001  # only for networks whose single image takes under 1 ms on the main session

PIXELS = "pixels"  # the pixel graph's input: uint8 (N, C, H, W)
PROBABILITIES = "probabilities"  # its output: float32 (N, K)


def faster_alone(main_s: list[float], single_s: list[float], gain: float = GAIN) -> bool:
    """Whether the one-thread session's median run time is below ``gain`` x the main one's."""
    return float(np.median(single_s)) < gain * float(np.median(main_s))


def _one_image_feed(session, dtype) -> dict[str, np.ndarray]:
    """A zero image ``(1, C, H, W)`` of ``dtype`` for ``session``'s first input."""
    meta = session.get_inputs()[0]
    shape = [1] + [d if isinstance(d, int) else 1 for d in meta.shape[1:]]
    return {meta.name: np.zeros(shape, dtype=dtype)}


def _run_times(session, feed, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - t0)
    return times


def worth_trying(session) -> bool:
    """Whether a one-thread session might beat ``session`` on one image: a CPU session on more
    than one thread whose network takes at most :data:`MAX_S` per image (timed here)."""
    if (session.get_providers() != ["CPUExecutionProvider"]
            or session.get_session_options().intra_op_num_threads == 1):
        return False
    feed = _one_image_feed(session, np.float32)
    session.run(None, feed)  # warm-up: first-run allocations
    return float(np.median(_run_times(session, feed, 3))) <= MAX_S


def single_image_session(path: Path | str, session, *, graph: bytes | None = None,
                         budget_s: float = BUDGET_S, min_pairs: int = 5, max_pairs: int = 40,
                         checked: bool = False):
    """A one-thread CPU session of ``graph`` (default: the file ``path``) when it runs one
    image faster than ``session``, else None.

    Both run one zero image (uint8 for a :func:`pixel_graph`, else normalised float),
    alternately so that the machine's load hits both alike, for about ``budget_s`` seconds (at
    least ``min_pairs``, at most ``max_pairs`` pairs; after ``min_pairs`` it stops as soon as
    the answer is clear: slower, or below 0.7x), and :func:`faster_alone` compares the
    medians. Only for a CPU ``session`` on more than one thread (one thread has nothing to
    gain) and a network whose single image takes at most :data:`MAX_S` on it (else no second
    session is opened: the wake-up saved is a few µs of a longer run); ``checked``: the
    caller has already asked :func:`worth_trying`.
    """
    if not checked and not worth_trying(session):
        return None
    feed = _one_image_feed(session, np.float32)
    single = onnx_session(graph if graph is not None else path, threads=1)
    single_feed = _one_image_feed(single, np.uint8 if graph is not None else np.float32)
    single.run(None, single_feed)
    main_s: list[float] = []
    single_s: list[float] = []
    start = time.perf_counter()
    while len(main_s) < max_pairs:
        main_s += _run_times(session, feed, 1)
        single_s += _run_times(single, single_feed, 1)
        if len(main_s) >= min_pairs and (time.perf_counter() - start > budget_s
                                         or not faster_alone(main_s, single_s, 1.0)
                                         or faster_alone(main_s, single_s, 0.7)):
            break  # out of time, or already clear
    return single if faster_alone(main_s, single_s) else None


def pixel_graph(path: Path | str, normalization, output_kind: str = LOGITS) -> bytes:
    """The bare-network export at ``path`` with its input and output steps inside the graph.

    Input ``pixels`` uint8 ``(N, C, H, W)`` → Cast to float → the normalisation as
    ``LoadedModel`` applies it (``x * scale[c] + shift[c]``, :meth:`Normalization.scale_shift`;
    without one, ``x / 255``) → the network → output ``probabilities`` ``(N, K)``: softmax of
    logits, exp of log-probabilities, or the probabilities as they come (``output_kind``).
    The network's own nodes and weights are the verified export's, untouched.

    Returns:
        The serialised ONNX model (for ``onnxruntime.InferenceSession``).
    """
    import onnx  # optional extra: onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    images = graph.input[0]  # normalised float (N, C, H, W)
    (logits,) = [o.name for o in graph.output]
    pixels = helper.make_tensor_value_info(PIXELS, TensorProto.UINT8, None)
    pixels.type.tensor_type.shape.CopyFrom(images.type.tensor_type.shape)
    channels = images.type.tensor_type.shape.dim[1].dim_value
    steps = [helper.make_node("Cast", [PIXELS], ["cnnkit_pixels_float"], to=TensorProto.FLOAT)]
    if normalization is None:  # x / 255, as LoadedModel._prepare
        constants = {"cnnkit_255": np.array(255.0, dtype=np.float32)}
        steps.append(helper.make_node("Div", ["cnnkit_pixels_float", "cnnkit_255"],
                                      [images.name]))
    else:
        scale, shift = normalization.scale_shift(from_uint8=True)
        constants = {name: np.asarray(v, dtype=np.float32).reshape(channels, 1, 1)
                     for name, v in (("cnnkit_scale", scale), ("cnnkit_shift", shift))}
        steps += [helper.make_node("Mul", ["cnnkit_pixels_float", "cnnkit_scale"],
                                   ["cnnkit_pixels_scaled"]),
                  helper.make_node("Add", ["cnnkit_pixels_scaled", "cnnkit_shift"],
                                   [images.name])]
    last = {LOGITS: helper.make_node("Softmax", [logits], [PROBABILITIES], axis=1),
            LOG_PROBS: helper.make_node("Exp", [logits], [PROBABILITIES]),
            PROBS: helper.make_node("Identity", [logits], [PROBABILITIES])}[output_kind]
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend([*steps, *nodes, last])
    graph.initializer.extend(numpy_helper.from_array(v, name) for name, v in constants.items())
    del graph.input[0]
    graph.input.insert(0, pixels)
    output = helper.make_tensor_value_info(PROBABILITIES, TensorProto.FLOAT, None)
    output.type.tensor_type.shape.CopyFrom(graph.output[0].type.tensor_type.shape)
    del graph.output[:]
    graph.output.append(output)
    return model.SerializeToString()
