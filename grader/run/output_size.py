"""The size of what a kernel sends, as a submission's output budget counts it: without
writing anything out, and stopping once past a limit, whatever the nesting or the length
of what a kernel made."""

import itertools

# What an output adds to the notebook besides its content (its keys, its place in the
# list), so that a million empty outputs cost as much as they weigh.
OUTPUT_OVERHEAD_BYTES = 100


def message_size(msg, limit=None):
    """What `msg` may add to the graded notebook: its content as JSON (near enough), the
    bytes of its binary buffers and an output's own overhead, counted without writing
    anything out; counting stops once past `limit`."""
    size = OUTPUT_OVERHEAD_BYTES
    for buffer in msg.get("buffers") or ():
        size += _buffer_size(buffer)
    left = None if limit is None else max(0, limit - size)
    return size + json_size(msg.get("content"), left)


def _buffer_size(buffer):
    try:
        return memoryview(buffer).nbytes
    except TypeError:  # not a buffer (a kernel can send anything)
        return len(str(buffer))


_END = object()


def json_size(value, limit=None):
    """The length of `value` (decoded JSON) written as JSON, near enough: every string,
    key and number, and a character for each bracket, colon and comma. Walked with a
    stack of iterators, so that neither deep nesting nor a long list costs more than its
    own size; it stops once past `limit`."""
    size, pending = 0, [iter((value,))]
    while pending:
        item = next(pending[-1], _END)
        if item is _END:
            pending.pop()
            continue
        if isinstance(item, str):
            size += len(item) + 2
        elif isinstance(item, dict):
            size += 2 * len(item) + 2
            pending.append(itertools.chain.from_iterable(item.items()))
        elif isinstance(item, list | tuple):
            size += len(item) + 2
            pending.append(iter(item))
        else:  # a number, a boolean, None (a kernel can send anything: its text)
            size += len(str(item))
        if limit is not None and size > limit:
            return size
    return size
