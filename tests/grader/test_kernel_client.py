"""grader.run.kernel_client.CappedKernelClient.wait_for_ready, with fake channels: a
kernel is ready once its kernel_info reply and that request's "idle" status have come,
without jupyter_client's 0.2 s wait for more IOPub messages at every kernel's start."""

import asyncio
import time
from queue import Empty

import jupyter_client
import pytest

from grader.run.kernel_client import IOPUB_SECONDS, CappedKernelClient


class FakeChannel:
    """Messages handed out in order; Empty (after `timeout`, as a socket would wait) once
    none is left."""

    def __init__(self):
        self.messages = []

    async def get_msg(self, timeout=None):
        if not self.messages:
            await asyncio.sleep(timeout)
            raise Empty
        return self.messages.pop(0)


def _status(state, request):
    return {"msg_type": "status", "content": {"execution_state": state},
            "parent_header": {"msg_id": request}}


class FakeKernel(CappedKernelClient):
    """A client whose kernel answers each kernel_info on shell, and on IOPub too from
    `connected_from` requests on (the first ones published before IOPub connected)."""

    def __init__(self, connected_from=1, alive=True, welcome=False):
        super().__init__()
        self.shell, self.iopub = FakeChannel(), FakeChannel()
        self.connected_from, self.alive, self.requests = connected_from, alive, []
        self.handled, self.welcome = None, welcome

    @property
    def shell_channel(self):
        return self.shell

    @property
    def iopub_channel(self):
        return self.iopub

    def kernel_info(self):
        request = f"request-{len(self.requests) + 1}"
        self.requests.append(request)
        if self.alive:
            self.shell.messages.append({"msg_type": "kernel_info_reply",
                                        "parent_header": {"msg_id": request}, "content": {}})
            if self.welcome and len(self.requests) == max(1, self.connected_from - 1):
                # subscribed after the kernel published this request's statuses
                self.iopub.messages.append({"msg_type": "iopub_welcome", "content": {},
                                            "parent_header": {}})
            if len(self.requests) >= self.connected_from:
                self.iopub.messages += [_status("busy", request), _status("idle", request)]
        return request

    async def _async_is_alive(self):
        return self.alive

    def _handle_kernel_info_reply(self, msg):
        self.handled = msg


def test_ready_at_the_requests_idle_status_without_waiting_for_more():
    client = FakeKernel()
    started = time.monotonic()
    asyncio.run(client.wait_for_ready(timeout=10))
    assert time.monotonic() - started < IOPUB_SECONDS / 2  # jupyter_client's waited 0.2 s
    assert client.requests == ["request-1"]
    assert client.handled["parent_header"]["msg_id"] == "request-1"


def test_an_iopub_not_yet_connected_is_asked_again():
    client = FakeKernel(connected_from=3)
    asyncio.run(client.wait_for_ready(timeout=10))
    assert client.requests == ["request-1", "request-2", "request-3"]
    assert client.iopub.messages == []


@pytest.mark.parametrize("connected_from", [1, 2])
def test_after_iopubs_welcome_a_lost_status_is_asked_again_at_once(connected_from):
    # Welcomed with the statuses behind it, the client is ready; welcomed with nothing
    # behind it, they went before the subscription: asked again without 0.2 s of silence.
    client = FakeKernel(connected_from=connected_from, welcome=True)
    started = time.monotonic()
    asyncio.run(client.wait_for_ready(timeout=10))
    assert time.monotonic() - started < IOPUB_SECONDS / 2
    assert client.requests == [f"request-{n}" for n in range(1, connected_from + 1)]
    assert client.iopub.messages == []


def test_a_dead_kernel_is_said_and_a_silent_one_times_out():
    with pytest.raises(RuntimeError, match="Kernel died before replying"):
        asyncio.run(FakeKernel(alive=False).wait_for_ready(timeout=10))
    silent = FakeKernel(connected_from=10**6)
    with pytest.raises(RuntimeError, match="didn't respond in 0.5 seconds"):
        asyncio.run(silent.wait_for_ready(timeout=0.5))


def test_jupyter_client_is_the_version_whose_wait_this_replaces():
    # Its wait_for_ready is what this one keeps the meaning of (kernel_info's reply on shell,
    # IOPub connected); a new jupyter_client may change it: check, then update the version.
    assert jupyter_client.__version__ == "8.10.0"  # requirements.txt pins it


class FloodingChannel(FakeChannel):
    """An IOPub on which a kernel publishes without end, never the request's "idle"."""

    async def get_msg(self, timeout=None):
        await asyncio.sleep(0.01)
        return _status("busy", "someone-else")


def test_a_kernel_flooding_iopub_times_out_at_the_deadline():
    # Each message comes within IOPUB_SECONDS of the last: without the deadline inside the
    # read, the wait never ended (the submission's watchdog alone would have ended it).
    flooding = FakeKernel()
    flooding.iopub = FloodingChannel()
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="didn't respond in 0.5 seconds"):
        asyncio.run(asyncio.wait_for(flooding.wait_for_ready(timeout=0.5), timeout=10))
    assert time.monotonic() - started < 2
