"""The worker's client of a kernel, whose sockets refuse any frame above a cap.

A kernel can send anything, of any size, on any of its channels (shell, iopub, stdin,
control, heartbeat). Without a cap, ZMQ would receive a 10 GB frame into the worker's
memory, and jupyter_client decode it, before any output budget applies. Every socket of
this client is made on a ZMQ context of its own whose sockets carry ZMQ_MAXMSGSIZE:
libzmq reads a frame's length first and, when it is above the cap, drops the connection
to the kernel instead of allocating the frame. That message, and what the kernel sends
until a new connection, are lost; as after any protocol error, libzmq never connects that
socket again. The cap is per frame: a multipart message of many capped frames is bounded
only by the worker's memory limit (grader.run.cluster).

`FrameWatch` sees a dropped connection (a socket monitor) and makes a new socket, so that
the notebook says what happened and later cells run, instead of replies that never come.
"""

import contextlib
import time
from queue import Empty

import zmq
import zmq.asyncio
from jupyter_client.asynchronous import AsyncKernelClient
from traitlets import Int, default

from grader.run import captures

# Of a message's frames other than its content: the header, parent header, metadata
# (hundreds of bytes each) and the signature.
ENVELOPE_BYTES = 10**6
# Messages a socket holds received and not yet read (ZMQ_RCVHWM; ZMQ's default is 1000):
# past it, the worker stops reading and the kernel's side holds the rest, in the kernel's
# memory, under its cap (its iopub PUB socket drops what passes its own 1000).
QUEUED_MESSAGES = 4
# Watched for drops: the heartbeat's socket lives in a thread of its own, and is made
# again at each missed beat (capped all the same).
WATCHED_CHANNELS = ("shell", "iopub", "stdin", "control")
IOPUB_SECONDS = 0.2  # between a kernel_info request's IOPub messages, as jupyter_client's
# The same once the kernel has said IOPub is subscribed ("iopub_welcome", which ipykernel
# sends as the subscription arrives): what it publishes after is already on its way.
WELCOMED_SECONDS = 0.02


def max_frame_bytes(output_bytes):
    """What one frame from a kernel may weigh: an output above the submission's budget is
    dropped anyway; the capture's answer (at most captures.MAX_CAPTURE_BYTES) is not
    counted in the budget, so it must fit too."""
    return output_bytes + captures.MAX_CAPTURE_BYTES + ENVELOPE_BYTES


class CappedKernelClient(AsyncKernelClient):
    """An AsyncKernelClient whose sockets, heartbeat included, refuse frames larger than
    `max_frame_bytes` (-1: no cap)."""

    max_frame_bytes = Int(-1, config=True)

    @default("context")
    def _context_default(self):
        self._created_context = True  # destroyed with the client's channels
        context = zmq.asyncio.Context()
        # Defaults for every socket made on it afterwards: all of this client's.
        context.setsockopt(zmq.MAXMSGSIZE, self.max_frame_bytes)
        context.setsockopt(zmq.RCVHWM, QUEUED_MESSAGES)
        return context

    async def wait_for_ready(self, timeout=None):
        """jupyter_client's wait: kernel_info asked until its reply comes on shell and IOPub
        shows it is connected; then jupyter_client read IOPub until nothing came for 0.2 s,
        a wait every kernel's start paid (validate's too). Here IOPub is read up to the
        request's own "idle" status, after which the kernel sends nothing unasked; a
        message of another request on IOPub would be ignored anyway (nbclient reads only
        the cell's)."""
        deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
        while True:
            request = self.kernel_info()
            try:
                reply = await self.shell_channel.get_msg(timeout=1)
            except Empty:
                reply = None
            if (reply is not None and reply["msg_type"] == "kernel_info_reply"
                    and await self._idle_after(request, deadline)):
                self._handle_kernel_info_reply(reply)
                return
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:g} seconds")

    async def _idle_after(self, request, deadline):
        """Whether IOPub brought `request`'s "idle" status, each message within
        IOPUB_SECONDS of the last (a socket not yet connected misses them: ask again), by
        `deadline`: a kernel that never stops publishing must not keep the client reading.
        Read once the request's reply came: a welcome before any of the request's statuses
        means IOPub was subscribed only after the kernel handled it, so what comes next
        comes at once, and silence after it means they went to nobody (a busy machine's
        kernel, slow to start: 2 of 12 kernels of a batch waited 0.2 s to ask again)."""
        seconds = IOPUB_SECONDS
        while time.monotonic() <= deadline:
            try:
                message = await self.iopub_channel.get_msg(timeout=seconds)
            except Empty:
                return False
            if message["msg_type"] == "iopub_welcome":
                seconds = WELCOMED_SECONDS
                continue
            if (message["msg_type"] == "status"
                    and message["content"].get("execution_state") == "idle"
                    and message["parent_header"].get("msg_id") == request):
                return True
        return False


class FrameWatch:
    """The channels whose connection to the kernel was dropped, of a started `client`:
    with capped frames, each drop is a frame over the cap (or the kernel gone). ZMQ never
    connects such a socket again: `reconnect` makes new ones."""

    def __init__(self, client):
        self.client = client
        self._monitors = {}  # channel -> (its socket, a reader of its monitor, the monitor)
        for channel in WATCHED_CHANNELS:
            self._watch(channel)

    def _watch(self, channel):
        socket = getattr(self.client, f"{channel}_channel").socket
        monitor = socket.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        # Read without an event loop, here, between cells.
        self._monitors[channel] = socket, zmq.Socket.shadow(monitor.underlying), monitor

    def dropped(self):
        """The channels dropped since the last call."""
        return [channel for channel, (_socket, reader, _monitor) in self._monitors.items()
                if _drained(reader)]

    async def reconnect(self, channels, seconds):
        """New sockets for `channels`; whether the kernel answered on them within
        `seconds` (jupyter_client's wait_for_ready: its shell and iopub, both)."""
        for channel in channels:
            self._forget(channel)
            getattr(self.client, f"{channel}_channel").close()
            setattr(self.client, f"_{channel}_channel", None)  # made again on first use
            getattr(self.client, f"{channel}_channel").start()
            self._watch(channel)
        try:
            await self.client.wait_for_ready(timeout=seconds)
        except RuntimeError:  # no answer in time
            return False
        return True

    def _forget(self, channel):
        socket, _reader, monitor = self._monitors.pop(channel)
        with contextlib.suppress(zmq.ZMQError):
            socket.disable_monitor()
        monitor.close(linger=0)

    def close(self):
        for channel in list(self._monitors):
            self._forget(channel)


def _drained(reader):
    """Whether the monitor `reader` had any event; all are read."""
    seen = False
    with contextlib.suppress(zmq.ZMQError):
        while reader.poll(0):
            reader.recv_multipart(zmq.NOBLOCK)
            seen = True
    return seen
